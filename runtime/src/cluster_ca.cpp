// The cluster CA and this node's certificate: `security::issue_from_key`
// derives the CA from the cluster key and issues a leaf certificate, and
// `security::make_private_dir` / `remove_private_dir` manage the directory
// that holds them. The CA is a pure function of the cluster key (see
// `derive_ca_key` and `make_ca_certificate`), so nodes that share the key
// never exchange CA files: each derives the same CA name and key pair and
// trusts what it signs.

#include <cerrno>
#include <cstdlib>
#include <vector>

#include <dirent.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <unistd.h>

#include "troupe/runtime/security.hpp"

#include "openssl_util.hpp"
#include "posix_util.hpp"

namespace troupe::security {

namespace {

[[nodiscard]] caf::error tls_error(std::string what) {
  return caf::make_error(errc::tls_config, std::move(what));
}

// Adds the extension `nid` with the config-file `value` to `cert`.
bool add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  detail::x509_ext_ptr ext{X509V3_EXT_conf_nid(nullptr, &ctx, nid, value)};
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

detail::x509_name_ptr make_name(const std::string& cn) {
  detail::x509_name_ptr name{X509_NAME_new()};
  if (!name
      || X509_NAME_add_entry_by_txt(
           name.get(), "CN", MBSTRING_UTF8,
           reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0)
           != 1)
    return nullptr;
  return name;
}

// -- deriving the cluster CA --------------------------------------------------

// Changing any of these changes every cluster's CA: nodes running different
// versions would then stop trusting each other. Bump the "v1" in `ca_info`
// together with whatever else changes.
constexpr char ca_salt[] = "troupe cluster key";
constexpr char ca_info[] = "troupe cluster ca v1";
constexpr char ca_not_before[] = "20200101000000Z";
constexpr char ca_not_after[] = "20991231235959Z";
constexpr long ca_serial = 1;

// Derives the CA's P-256 private key from the 32 key bytes: HKDF-SHA256
// yields 48 bytes, which reduce to a scalar d in [1, n-1] as d = x mod (n-1)
// + 1 (FIPS 186-4 B.4.1; the 128 extra bits make the bias negligible).
[[nodiscard]] caf::expected<detail::pkey_ptr>
derive_ca_key(const std::vector<unsigned char>& key) {
  unsigned char okm[48];
  detail::kdf_ptr kdf{EVP_KDF_fetch(nullptr, "HKDF", nullptr)};
  detail::kdf_ctx_ptr kctx{kdf ? EVP_KDF_CTX_new(kdf.get()) : nullptr};
  if (!kctx)
    return tls_error("HKDF is not available: " + detail::openssl_error());
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
    OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_KEY, const_cast<unsigned char*>(key.data()), key.size()),
    OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_SALT, const_cast<char*>(ca_salt), sizeof(ca_salt) - 1),
    OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_INFO, const_cast<char*>(ca_info), sizeof(ca_info) - 1),
    OSSL_PARAM_construct_end(),
  };
  if (EVP_KDF_derive(kctx.get(), okm, sizeof(okm), params) != 1)
    return tls_error("HKDF failed: " + detail::openssl_error());
  detail::ec_group_ptr group{EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1)};
  detail::bn_ctx_ptr bn_ctx{BN_CTX_secure_new()};
  detail::bn_ptr d{BN_secure_new()};
  detail::bn_ptr x{BN_bin2bn(okm, sizeof(okm), nullptr)};
  detail::bn_ptr n_minus_1{group ? BN_dup(EC_GROUP_get0_order(group.get()))
                                 : nullptr};
  OPENSSL_cleanse(okm, sizeof(okm));
  detail::ec_point_ptr pub{group ? EC_POINT_new(group.get()) : nullptr};
  unsigned char pub_oct[65];
  size_t pub_len = 0;
  if (!group || !bn_ctx || !d || !x || !n_minus_1 || !pub
      || BN_sub_word(n_minus_1.get(), 1) != 1
      || BN_mod(d.get(), x.get(), n_minus_1.get(), bn_ctx.get()) != 1
      || BN_add_word(d.get(), 1) != 1
      || EC_POINT_mul(group.get(), pub.get(), d.get(), nullptr, nullptr,
                      bn_ctx.get())
           != 1
      || (pub_len = EC_POINT_point2oct(group.get(), pub.get(),
                                       POINT_CONVERSION_UNCOMPRESSED, pub_oct,
                                       sizeof(pub_oct), bn_ctx.get()))
           == 0)
    return tls_error("cannot derive the CA key: " + detail::openssl_error());
  detail::param_bld_ptr bld{OSSL_PARAM_BLD_new()};
  if (!bld
      || OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME,
                                         "prime256v1", 0)
           != 1
      || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, d.get())
           != 1
      || OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY,
                                          pub_oct, pub_len)
           != 1)
    return tls_error("cannot build the CA key: " + detail::openssl_error());
  detail::params_ptr key_params{OSSL_PARAM_BLD_to_param(bld.get())};
  detail::pkey_ctx_ptr pctx{EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr)};
  EVP_PKEY* raw = nullptr;
  if (!key_params || !pctx || EVP_PKEY_fromdata_init(pctx.get()) != 1
      || EVP_PKEY_fromdata(pctx.get(), &raw, EVP_PKEY_KEYPAIR, key_params.get())
           != 1)
    return tls_error("cannot build the CA key: " + detail::openssl_error());
  return detail::pkey_ptr{raw};
}

// Builds the self-signed CA certificate for `ca_key`. Every field but the
// signature (ECDSA signatures are randomized) is a function of the key, so
// certificates a node issues verify against any other node's CA certificate.
[[nodiscard]] caf::expected<detail::x509_ptr>
make_ca_certificate(EVP_PKEY* ca_key) {
  unsigned char* der = nullptr;
  auto der_len = i2d_PUBKEY(ca_key, &der);
  if (der_len <= 0)
    return tls_error("cannot encode the CA key: " + detail::openssl_error());
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  auto ok = EVP_Digest(der, static_cast<size_t>(der_len), digest, &digest_len,
                       EVP_sha256(), nullptr);
  OPENSSL_free(der);
  if (ok != 1)
    return tls_error("cannot hash the CA key: " + detail::openssl_error());
  auto cn = "troupe cluster CA " + detail::to_hex(digest, 4);
  detail::x509_ptr cert{X509_new()};
  auto name = make_name(cn);
  if (!cert || !name || X509_set_version(cert.get(), X509_VERSION_3) != 1
      || ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), ca_serial) != 1
      || X509_set_subject_name(cert.get(), name.get()) != 1
      || X509_set_issuer_name(cert.get(), name.get()) != 1
      || ASN1_TIME_set_string_X509(X509_getm_notBefore(cert.get()),
                                   ca_not_before)
           != 1
      || ASN1_TIME_set_string_X509(X509_getm_notAfter(cert.get()), ca_not_after)
           != 1
      || X509_set_pubkey(cert.get(), ca_key) != 1
      || !add_extension(cert.get(), cert.get(), NID_basic_constraints,
                        "critical,CA:TRUE")
      || !add_extension(cert.get(), cert.get(), NID_key_usage,
                        "critical,keyCertSign,cRLSign")
      || !add_extension(cert.get(), cert.get(), NID_subject_key_identifier,
                        "hash")
      || X509_sign(cert.get(), ca_key, EVP_sha256()) <= 0)
    return tls_error("cannot build the CA certificate: "
                     + detail::openssl_error());
  return cert;
}

// -- issuing this node's certificate ------------------------------------------

// Returns `name` cut to the 64 bytes X.509 allows in a common name, without
// splitting a UTF-8 sequence; an empty name becomes "troupe node".
std::string leaf_common_name(const std::string& name) {
  constexpr size_t max_len = 64;
  if (name.empty())
    return "troupe node";
  if (name.size() <= max_len)
    return name;
  auto len = max_len;
  while (len > 0 && (static_cast<unsigned char>(name[len]) & 0xC0) == 0x80)
    --len;
  return name.substr(0, len);
}

// Issues a certificate for `leaf_key`, signed by the CA.
[[nodiscard]] caf::expected<detail::x509_ptr>
make_leaf_certificate(X509* ca_cert, EVP_PKEY* ca_key, EVP_PKEY* leaf_key,
                      const std::string& cn) {
  unsigned char serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof(serial_bytes)) != 1)
    return tls_error("cannot get random bytes: " + detail::openssl_error());
  serial_bytes[0] &= 0x7f; // positive
  serial_bytes[0] |= 0x40; // and never zero
  detail::bn_ptr serial{BN_bin2bn(serial_bytes, sizeof(serial_bytes), nullptr)};
  detail::x509_ptr cert{X509_new()};
  auto name = make_name(leaf_common_name(cn));
  if (!serial || !cert || !name
      || X509_set_version(cert.get(), X509_VERSION_3) != 1
      || BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get()))
           == nullptr
      || X509_set_subject_name(cert.get(), name.get()) != 1
      || X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert)) != 1
      || X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr
      || X509_gmtime_adj(X509_getm_notAfter(cert.get()), 365L * 24 * 3600)
           == nullptr
      || X509_set_pubkey(cert.get(), leaf_key) != 1
      || !add_extension(cert.get(), ca_cert, NID_basic_constraints,
                        "critical,CA:FALSE")
      || !add_extension(cert.get(), ca_cert, NID_key_usage,
                        "critical,digitalSignature")
      || !add_extension(cert.get(), ca_cert, NID_ext_key_usage,
                        "serverAuth,clientAuth")
      || !add_extension(cert.get(), ca_cert, NID_subject_key_identifier, "hash")
      || !add_extension(cert.get(), ca_cert, NID_authority_key_identifier,
                        "keyid:always")
      || X509_sign(cert.get(), ca_key, EVP_sha256()) <= 0)
    return tls_error("cannot build the node certificate: "
                     + detail::openssl_error());
  return cert;
}

} // namespace

caf::expected<tls_files> issue_from_key(const std::string& key,
                                        const std::string& node_name,
                                        const std::string& dir) {
  detail::error_queue_guard errors;
  std::vector<unsigned char> bytes;
  if (!detail::decode_key(key, bytes))
    return tls_error("the cluster key is not 64 hex digits");
  auto ca_key = derive_ca_key(bytes);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  if (!ca_key)
    return std::move(ca_key.error());
  auto ca_cert = make_ca_certificate(ca_key->get());
  if (!ca_cert)
    return std::move(ca_cert.error());
  detail::pkey_ptr leaf_key{EVP_EC_gen("P-256")};
  if (!leaf_key)
    return tls_error("cannot generate the node key: "
                     + detail::openssl_error());
  auto leaf_cert = make_leaf_certificate(ca_cert->get(), ca_key->get(),
                                         leaf_key.get(), node_name);
  if (!leaf_cert)
    return std::move(leaf_cert.error());
  auto ca_pem = detail::to_pem(
    [&](BIO* bio) { return PEM_write_bio_X509(bio, ca_cert->get()); });
  auto cert_pem = detail::to_pem(
    [&](BIO* bio) { return PEM_write_bio_X509(bio, leaf_cert->get()); });
  auto key_pem = detail::to_pem([&](BIO* bio) {
    return PEM_write_bio_PrivateKey(bio, leaf_key.get(), nullptr, nullptr, 0,
                                    nullptr, nullptr);
  });
  if (ca_pem.empty() || cert_pem.empty() || key_pem.empty())
    return tls_error("cannot encode the certificates: "
                     + detail::openssl_error());
  tls_files files{dir + "/ca.pem", dir + "/node.pem", dir + "/node.key"};
  auto err = detail::write_private_file(files.ca, ca_pem);
  if (!err)
    err = detail::write_private_file(files.cert, cert_pem);
  if (!err)
    err = detail::write_private_file(files.key, key_pem);
  OPENSSL_cleanse(&key_pem[0], key_pem.size());
  if (err)
    return err;
  return files;
}

caf::expected<std::string> make_private_dir() {
  std::string base = "/tmp";
  if (const auto* tmp = std::getenv("TMPDIR"); tmp != nullptr && *tmp != '\0')
    base = tmp;
  while (base.size() > 1 && base.back() == '/')
    base.pop_back();
  auto templ = base + "/troupe-tls-XXXXXX";
  std::vector<char> buf{templ.begin(), templ.end()};
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr)
    return caf::make_error(errc::cannot_open_file,
                           "cannot create a private directory in " + base + ": "
                             + detail::errno_text(errno));
  return std::string{buf.data()};
}

void remove_private_dir(const std::string& dir) {
  if (dir.empty())
    return;
  if (auto* handle = ::opendir(dir.c_str())) {
    while (auto* entry = ::readdir(handle)) {
      std::string name = entry->d_name;
      if (name != "." && name != "..")
        ::unlink((dir + "/" + name).c_str());
    }
    ::closedir(handle);
  }
  ::rmdir(dir.c_str());
}

} // namespace troupe::security
