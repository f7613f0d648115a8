#pragma once

// Private: OpenSSL helpers shared by the security sources: owning pointers
// for OpenSSL objects, a guard for OpenSSL's error queue, PEM and X.509
// conveniences, the PEM passphrase callback, and the cluster key's encoding
// (64 hex digits), which both the key files and the CA derivation read.

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/buffer.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace troupe::detail {

// -- RAII for OpenSSL objects -------------------------------------------------

template <class T, void (*Free)(T*)>
struct ossl_deleter {
  void operator()(T* ptr) const {
    Free(ptr);
  }
};

/// Owns an OpenSSL object and frees it with `Free`.
template <class T, void (*Free)(T*)>
using ossl_ptr = std::unique_ptr<T, ossl_deleter<T, Free>>;

/// Frees `ptr` after clearing it (BN_clear_free).
void free_bn(BIGNUM* ptr);

/// Frees the stack `ptr` and the certificates in it.
void free_x509_stack(STACK_OF(X509) * ptr);

using bio_ptr = ossl_ptr<BIO, BIO_free_all>;
using bn_ptr = ossl_ptr<BIGNUM, free_bn>;
using bn_ctx_ptr = ossl_ptr<BN_CTX, BN_CTX_free>;
using ec_group_ptr = ossl_ptr<EC_GROUP, EC_GROUP_free>;
using ec_point_ptr = ossl_ptr<EC_POINT, EC_POINT_free>;
using kdf_ptr = ossl_ptr<EVP_KDF, EVP_KDF_free>;
using kdf_ctx_ptr = ossl_ptr<EVP_KDF_CTX, EVP_KDF_CTX_free>;
using param_bld_ptr = ossl_ptr<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>;
using params_ptr = ossl_ptr<OSSL_PARAM, OSSL_PARAM_free>;
using pkey_ptr = ossl_ptr<EVP_PKEY, EVP_PKEY_free>;
using pkey_ctx_ptr = ossl_ptr<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using ssl_ctx_ptr = ossl_ptr<SSL_CTX, SSL_CTX_free>;
using ssl_ptr = ossl_ptr<SSL, SSL_free>;
using x509_ptr = ossl_ptr<X509, X509_free>;
using x509_ext_ptr = ossl_ptr<X509_EXTENSION, X509_EXTENSION_free>;
using x509_name_ptr = ossl_ptr<X509_NAME, X509_NAME_free>;
using x509_stack_ptr = ossl_ptr<STACK_OF(X509), free_x509_stack>;
using x509_store_ptr = ossl_ptr<X509_STORE, X509_STORE_free>;
using x509_store_ctx_ptr = ossl_ptr<X509_STORE_CTX, X509_STORE_CTX_free>;

/// Leaves OpenSSL's thread-local error queue empty when a function returns, so
/// that our failures never show up in CAF's later error reports.
struct error_queue_guard {
  error_queue_guard() {
    ERR_clear_error();
  }
  error_queue_guard(const error_queue_guard&) = delete;
  error_queue_guard& operator=(const error_queue_guard&) = delete;
  ~error_queue_guard() {
    ERR_clear_error();
  }
};

// -- errors, PEM and X.509 ----------------------------------------------------

/// Returns whether the X.509 verification error `code` means that a
/// certificate was not issued by the trusted CA (another cluster's key, or
/// another CA), as opposed to a bad date or a malformed certificate.
bool is_foreign_issuer(long code);

/// Returns the reason of the oldest OpenSSL error, or `fallback`.
std::string openssl_error(const char* fallback = "unknown OpenSSL error");

/// Returns a read-only memory BIO over `text`, which must outlive it.
bio_ptr memory_bio(const std::string& text);

/// Returns the PEM text that `bio_writer` writes to a memory BIO, or an empty
/// string if it fails.
template <class F>
std::string to_pem(F bio_writer) {
  bio_ptr bio{BIO_new(BIO_s_mem())};
  if (!bio || bio_writer(bio.get()) != 1)
    return {};
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio.get(), &mem);
  return std::string{mem->data, mem->length};
}

/// Returns the common name in `name`, or its one-line form if it has none.
std::string common_name(const X509_NAME* name);

/// Formats an ASN.1 time as "2024-01-31 12:00:00 UTC".
std::string time_text(const ASN1_TIME* when);

/// Reads every PEM certificate in `text` into `out`; returns how many.
size_t read_certificates(const std::string& text, STACK_OF(X509) * out);

/// What the PEM password callback learns about the key it opens.
struct passphrase_state {
  const std::string* passphrase = nullptr;
  bool asked = false;
};

/// A `pem_password_cb` whose `user_data` is a `passphrase_state`: supplies
/// the passphrase, never prompts on the terminal, and records that it was
/// asked.
int passphrase_callback(char* buf, int size, int rwflag, void* user_data);

// -- the cluster key's encoding -----------------------------------------------

/// Bytes in a cluster key.
constexpr size_t key_bytes = 32;

/// Hex digits in a cluster key file.
constexpr size_t key_digits = 2 * key_bytes;

/// Returns `size` bytes at `data` as lowercase hex digits.
std::string to_hex(const unsigned char* data, size_t size);

/// Decodes the 64 hex digits of a cluster key into `out`; returns false on
/// anything else.
bool decode_key(const std::string& hex, std::vector<unsigned char>& out);

} // namespace troupe::detail
