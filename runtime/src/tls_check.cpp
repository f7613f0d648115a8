// Checking TLS files before CAF gets them: `security::check_tls_files`.

#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "troupe/runtime/security.hpp"

#include "openssl_util.hpp"
#include "posix_util.hpp"

namespace troupe::security {

namespace {

[[nodiscard]] caf::error tls_error(std::string what) {
  return caf::make_error(errc::tls_config, std::move(what));
}

} // namespace

caf::error check_tls_files(const tls_files& files,
                           const std::string& passphrase) {
  detail::error_queue_guard errors;
  // The CA file: one or more certificates, all trusted.
  auto text = detail::read_small_file(files.ca, "CA certificate");
  if (!text)
    return std::move(text.error());
  detail::x509_stack_ptr cas{sk_X509_new_null()};
  if (detail::read_certificates(*text, cas.get()) == 0)
    return tls_error("the CA certificate file " + files.ca
                     + " holds no PEM certificate");
  // The certificate file: our certificate, then any intermediates.
  text = detail::read_small_file(files.cert, "certificate");
  if (!text)
    return std::move(text.error());
  detail::x509_stack_ptr chain{sk_X509_new_null()};
  if (detail::read_certificates(*text, chain.get()) == 0)
    return tls_error("the certificate file " + files.cert
                     + " holds no PEM certificate");
  detail::x509_ptr leaf{sk_X509_shift(chain.get())};
  // The private key, possibly encrypted.
  text = detail::read_small_file(files.key, "private key");
  if (!text)
    return std::move(text.error());
  detail::passphrase_state pass{&passphrase, false};
  detail::pkey_ptr key;
  {
    auto bio = detail::memory_bio(*text);
    key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr,
                                      detail::passphrase_callback, &pass));
  }
  OPENSSL_cleanse(&(*text)[0], text->size());
  if (!key) {
    if (pass.asked && passphrase.empty())
      return tls_error("the private key " + files.key
                       + " is encrypted and no passphrase was given");
    if (pass.asked)
      return tls_error("wrong passphrase for the private key " + files.key);
    return tls_error("the private key file " + files.key
                     + " holds no PEM private key");
  }
  if (EVP_PKEY_eq(X509_get0_pubkey(leaf.get()), key.get()) != 1)
    return tls_error("the private key " + files.key
                     + " does not belong to the certificate " + files.cert);
  // The chain up to one of the CAs, now.
  detail::x509_store_ptr store{X509_STORE_new()};
  if (!store)
    return tls_error("cannot check the certificates: "
                     + detail::openssl_error());
  for (int i = 0; i < sk_X509_num(cas.get()); ++i)
    X509_STORE_add_cert(store.get(), sk_X509_value(cas.get(), i));
  // Each node is client and server: the certificate must serve for both.
  for (auto purpose : {0, X509_PURPOSE_SSL_CLIENT, X509_PURPOSE_SSL_SERVER}) {
    detail::x509_store_ctx_ptr ctx{X509_STORE_CTX_new()};
    if (!ctx
        || X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), chain.get())
             != 1
        || (purpose != 0
            && X509_STORE_CTX_set_purpose(ctx.get(), purpose) != 1))
      return tls_error("cannot check the certificates: "
                       + detail::openssl_error());
    if (X509_verify_cert(ctx.get()) == 1)
      continue;
    auto code = X509_STORE_CTX_get_error(ctx.get());
    auto* bad = X509_STORE_CTX_get_current_cert(ctx.get());
    auto is_leaf = bad == nullptr || X509_cmp(bad, leaf.get()) == 0;
    auto is_ca = false;
    for (int i = 0; !is_leaf && i < sk_X509_num(cas.get()); ++i)
      is_ca = is_ca || X509_cmp(bad, sk_X509_value(cas.get(), i)) == 0;
    auto which = is_leaf ? "the certificate " + files.cert
                 : is_ca ? "the CA certificate " + files.ca
                         : "an intermediate certificate in " + files.cert;
    if (detail::is_foreign_issuer(code))
      return tls_error("the certificate " + files.cert
                       + " is not signed by the CA in " + files.ca
                       + " (issued by '"
                       + detail::common_name(X509_get_issuer_name(leaf.get()))
                       + "', the CA is '"
                       + detail::common_name(
                         X509_get_subject_name(sk_X509_value(cas.get(), 0)))
                       + "'; different --authkey-file or --tls-ca?)");
    switch (code) {
      case X509_V_ERR_CERT_HAS_EXPIRED:
        return tls_error(which + " expired on "
                         + detail::time_text(X509_get0_notAfter(bad)));
      case X509_V_ERR_CERT_NOT_YET_VALID:
        return tls_error(which + " is not valid before "
                         + detail::time_text(X509_get0_notBefore(bad))
                         + " (check the clock of this host)");
      case X509_V_ERR_INVALID_PURPOSE:
        return tls_error(
          which + " may not be used for TLS "
          + (purpose == X509_PURPOSE_SSL_CLIENT ? "clients" : "servers")
          + " (troupe nodes need extendedKeyUsage serverAuth,clientAuth)");
      default:
        return tls_error(which + " does not verify against " + files.ca + ": "
                         + X509_verify_cert_error_string(code));
    }
  }
  return caf::none;
}

} // namespace troupe::security
