// OpenSSL helpers shared by the security sources (see openssl_util.hpp).

#include "openssl_util.hpp"

#include <cstring>
#include <ctime>

#include <openssl/pem.h>

namespace troupe::detail {

namespace {

int hex_value(char ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

} // namespace

void free_bn(BIGNUM* ptr) {
  BN_clear_free(ptr);
}

void free_x509_stack(STACK_OF(X509) * ptr) {
  sk_X509_pop_free(ptr, X509_free);
}

bool is_foreign_issuer(long code) {
  switch (code) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return true;
    default:
      return false;
  }
}

std::string openssl_error(const char* fallback) {
  auto code = ERR_peek_error();
  if (code == 0)
    return fallback;
  if (auto* reason = ERR_reason_error_string(code))
    return reason;
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

bio_ptr memory_bio(const std::string& text) {
  return bio_ptr{BIO_new_mem_buf(text.data(), static_cast<int>(text.size()))};
}

std::string common_name(const X509_NAME* name) {
  if (name == nullptr)
    return "?";
  auto idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx >= 0) {
    auto* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    unsigned char* utf8 = nullptr;
    auto len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len >= 0) {
      std::string result{reinterpret_cast<char*>(utf8),
                         static_cast<size_t>(len)};
      OPENSSL_free(utf8);
      return result;
    }
  }
  char buf[256];
  X509_NAME_oneline(name, buf, sizeof(buf));
  return buf;
}

std::string time_text(const ASN1_TIME* when) {
  tm parts{};
  if (when == nullptr || ASN1_TIME_to_tm(when, &parts) != 1)
    return "?";
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &parts);
  return buf;
}

size_t read_certificates(const std::string& text, STACK_OF(X509) * out) {
  auto bio = memory_bio(text);
  size_t count = 0;
  while (auto* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    sk_X509_push(out, cert);
    ++count;
  }
  ERR_clear_error(); // the loop ends with a "no start line" error
  return count;
}

int passphrase_callback(char* buf, int size, int, void* user_data) {
  auto* state = static_cast<passphrase_state*>(user_data);
  state->asked = true;
  if (state->passphrase == nullptr || state->passphrase->empty())
    return -1; // never prompt on the terminal
  auto len = static_cast<int>(state->passphrase->size());
  if (len > size)
    return -1;
  std::memcpy(buf, state->passphrase->data(), static_cast<size_t>(len));
  return len;
}

std::string to_hex(const unsigned char* data, size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string result;
  result.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    result += digits[data[i] >> 4];
    result += digits[data[i] & 0x0f];
  }
  return result;
}

bool decode_key(const std::string& hex, std::vector<unsigned char>& out) {
  if (hex.size() != key_digits)
    return false;
  out.assign(key_bytes, 0);
  for (size_t i = 0; i < key_bytes; ++i) {
    auto hi = hex_value(hex[2 * i]);
    auto lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    out[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return true;
}

} // namespace troupe::detail
