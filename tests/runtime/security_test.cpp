#include "troupe/runtime/security.hpp"

#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/tcp.hpp"

using Catch::Matchers::Contains;
using namespace std::chrono_literals;

namespace troupe::security {

namespace {

// -- files --------------------------------------------------------------------

// A private scratch directory, deleted with the files in it.
struct scratch_dir {
  scratch_dir() {
    auto dir = make_private_dir();
    if (!dir)
      throw std::runtime_error(error_text(dir.error()));
    path = std::move(*dir);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  ~scratch_dir() {
    remove_private_dir(path);
  }
  std::string operator/(const std::string& name) const {
    return path + "/" + name;
  }
  std::string path;
};

// Returns the message of `x`'s error, or "" if it holds a value.
template <class T>
std::string why(const caf::expected<T>& x) {
  return x ? std::string{} : error_text(x.error());
}

std::string read_text(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_text(const std::string& path, const std::string& text,
                mode_t mode = 0600) {
  {
    std::ofstream out{path, std::ios::binary | std::ios::trunc};
    out << text;
  }
  ::chmod(path.c_str(), mode);
}

mode_t file_mode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return 0;
  return st.st_mode & 07777;
}

bool is_lower_hex(const std::string& text) {
  for (auto ch : text)
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
      return false;
  return true;
}

// -- a throwaway PKI built with the OpenSSL API -------------------------------

struct pkey_free {
  void operator()(EVP_PKEY* ptr) const {
    EVP_PKEY_free(ptr);
  }
};
struct x509_free {
  void operator()(X509* ptr) const {
    X509_free(ptr);
  }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;

pkey_ptr new_key() {
  return pkey_ptr{EVP_EC_gen("P-256")};
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  auto* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  REQUIRE(ext != nullptr);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// Makes a certificate for `key`, valid from now + `from` to now + `to`
// seconds, signed by `issuer` (self-signed CA if null). Leaves get the
// extended key usage `eku`.
x509_ptr make_cert(const char* cn, EVP_PKEY* key, X509* issuer,
                   EVP_PKEY* issuer_key, long from, long to,
                   const char* eku = "serverAuth,clientAuth") {
  static long serial = 100;
  x509_ptr cert{X509_new()};
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), ++serial);
  auto* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn), -1, -1,
                             0);
  X509_set_issuer_name(
    cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), from);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), to);
  X509_set_pubkey(cert.get(), key);
  if (issuer == nullptr) {
    add_ext(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
    add_ext(cert.get(), cert.get(), NID_key_usage, "keyCertSign,cRLSign");
  } else {
    add_ext(cert.get(), issuer, NID_basic_constraints, "CA:FALSE");
    add_ext(cert.get(), issuer, NID_ext_key_usage, eku);
  }
  X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256());
  return cert;
}

void write_cert(const std::string& path, X509* cert) {
  auto* fp = std::fopen(path.c_str(), "w");
  REQUIRE(fp != nullptr);
  PEM_write_X509(fp, cert);
  std::fclose(fp);
}

// Writes `key` as PEM, encrypted with AES-256 if `passphrase` is not empty.
void write_key(const std::string& path, EVP_PKEY* key,
               const char* passphrase = nullptr) {
  auto* fp = std::fopen(path.c_str(), "w");
  REQUIRE(fp != nullptr);
  if (passphrase != nullptr)
    PEM_write_PrivateKey(fp, key, EVP_aes_256_cbc(), nullptr, 0, nullptr,
                         const_cast<char*>(passphrase));
  else
    PEM_write_PrivateKey(fp, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(fp);
  ::chmod(path.c_str(), 0600);
}

x509_ptr load_cert(const std::string& path) {
  auto* fp = std::fopen(path.c_str(), "r");
  if (fp == nullptr)
    return nullptr;
  x509_ptr cert{PEM_read_X509(fp, nullptr, nullptr, nullptr)};
  std::fclose(fp);
  return cert;
}

// -- sockets ------------------------------------------------------------------

// A TCP socket listening on 127.0.0.1 at a port the OS picked.
struct listener {
  listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    auto* sa = reinterpret_cast<sockaddr*>(&addr);
    if (fd < 0 || ::bind(fd, sa, len) != 0 || ::listen(fd, 8) != 0
        || ::getsockname(fd, sa, &len) != 0)
      throw std::runtime_error("cannot listen on 127.0.0.1");
    port = ntohs(addr.sin_port);
  }
  listener(const listener&) = delete;
  listener& operator=(const listener&) = delete;
  ~listener() {
    if (fd >= 0)
      ::close(fd);
  }
  int fd = -1;
  uint16_t port = 0;
};

// Returns a port on 127.0.0.1 where nothing listens (bound once, then freed).
uint16_t closed_port() {
  listener tmp;
  return tmp.port;
}

using steady = std::chrono::steady_clock;

// Waits for `events` on `fd` until `deadline` or until `stop_fd` becomes
// readable. Returns whether `fd` is ready.
bool wait_for(int fd, short events, int stop_fd, steady::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - steady::now());
    if (left.count() <= 0)
      return false;
    pollfd fds[] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
    auto rc = ::poll(fds, 2, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc <= 0 || fds[1].revents != 0)
      return false;
    return true;
  }
}

// A server on 127.0.0.1, on its own thread, serving one connection at a time
// until destroyed: either TLS that requires a client certificate from
// `files.ca` (and presents `files.cert`), or plain TCP that answers with a
// line of text. Every wait is bounded by 10 s.
class test_server {
public:
  enum class kind { tls, plain };

  test_server(kind k, const tls_files& files) : kind_(k) {
    if (::pipe2(stop_, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe2 failed");
    if (k == kind::tls) {
      ctx_ = SSL_CTX_new(TLS_server_method());
      if (ctx_ == nullptr
          || SSL_CTX_use_certificate_chain_file(ctx_, files.cert.c_str()) != 1
          || SSL_CTX_use_PrivateKey_file(ctx_, files.key.c_str(),
                                         SSL_FILETYPE_PEM)
               != 1
          || SSL_CTX_load_verify_locations(ctx_, files.ca.c_str(), nullptr)
               != 1)
        throw std::runtime_error("cannot set up the test TLS server");
      SSL_CTX_set_verify(
        ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    thread_ = std::thread{[this] { run(); }};
  }

  test_server(const test_server&) = delete;
  test_server& operator=(const test_server&) = delete;

  ~test_server() {
    char byte = 0;
    [[maybe_unused]] auto n = ::write(stop_[1], &byte, 1);
    thread_.join();
    ::close(stop_[0]);
    ::close(stop_[1]);
    SSL_CTX_free(ctx_);
  }

  uint16_t port() const {
    return listener_.port;
  }

private:
  void run() {
    // Clients close early; a write to them must not kill the test.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    for (;;) {
      pollfd fds[] = {{listener_.fd, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0 && errno != EINTR)
        return;
      if (fds[1].revents != 0)
        return;
      if (fds[0].revents == 0)
        continue;
      auto fd = ::accept4(listener_.fd, nullptr, nullptr,
                          SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0)
        continue;
      if (kind_ == kind::tls)
        serve_tls(fd);
      else
        serve_plain(fd);
      ::close(fd);
    }
  }

  void serve_tls(int fd) {
    auto deadline = steady::now() + 10s;
    auto* ssl = SSL_new(ctx_);
    SSL_set_fd(ssl, fd);
    auto accepted = false;
    for (;;) {
      auto rc = SSL_accept(ssl);
      if (rc == 1) {
        accepted = true;
        break;
      }
      auto err = SSL_get_error(ssl, rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        if (wait_for(fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                     stop_[0], deadline))
          continue;
      }
      break;
    }
    // Keep the connection until the client hangs up.
    while (accepted) {
      char buf[256];
      auto rc = SSL_read(ssl, buf, sizeof(buf));
      if (rc > 0)
        continue;
      auto err = SSL_get_error(ssl, rc);
      if (err != SSL_ERROR_WANT_READ
          || !wait_for(fd, POLLIN, stop_[0], deadline))
        break;
    }
    SSL_free(ssl);
    ERR_clear_error();
  }

  void serve_plain(int fd) {
    auto deadline = steady::now() + 10s;
    const char text[] = "hello, this is not TLS\r\n";
    ::send(fd, text, sizeof(text) - 1, MSG_NOSIGNAL);
    char buf[256];
    while (wait_for(fd, POLLIN, stop_[0], deadline))
      if (::read(fd, buf, sizeof(buf)) <= 0)
        break;
  }

  kind kind_;
  SSL_CTX* ctx_ = nullptr;
  listener listener_;
  int stop_[2] = {-1, -1};
  std::thread thread_;
};

// Issues certificates for `node` from a new cluster key into `dir`.
tls_files issue(const std::string& key, const std::string& node,
                const scratch_dir& dir) {
  auto files = issue_from_key(key, node, dir.path);
  INFO(why(files));
  REQUIRE(files);
  return *files;
}

std::string new_key_text(const scratch_dir& dir, const std::string& name) {
  auto path = dir / name;
  REQUIRE(!write_key_file(path));
  auto key = read_key_file(path);
  REQUIRE(key);
  return *key;
}

} // namespace

// -- key files ----------------------------------------------------------------

TEST_CASE("keygen writes 64 hex digits to a file only its owner can read",
          "[runtime][security]") {
  scratch_dir dir;
  auto path = dir / "cluster.key";
  REQUIRE(!write_key_file(path));
  CHECK(file_mode(path) == 0600);
  auto text = read_text(path);
  REQUIRE(text.size() == 65);
  CHECK(text.back() == '\n');
  CHECK(is_lower_hex(text.substr(0, 64)));
  auto key = read_key_file(path);
  CHECK(key);
  CHECK((key && *key == text.substr(0, 64)));
  SECTION("every key is new") {
    auto other = dir / "other.key";
    REQUIRE(!write_key_file(other));
    CHECK(read_text(other) != text);
  }
  SECTION("an existing file is never overwritten") {
    auto err = write_key_file(path);
    CHECK_THAT(error_text(err), Contains(path) && Contains("already exists"));
    CHECK(read_text(path) == text);
  }
}

TEST_CASE("read_key_file rejects keys that are exposed or malformed",
          "[runtime][security]") {
  scratch_dir dir;
  auto path = dir / "cluster.key";
  std::string key = "unchanged";
  auto good = std::string(64, 'a');
  // Reads the key file into `key` if it is valid; returns the error message,
  // or "" on success.
  auto read_key = [&] {
    auto res = read_key_file(path);
    if (res)
      key = *res;
    return why(res);
  };
  SECTION("trailing whitespace is fine, upper case too") {
    write_text(path, std::string(64, 'A') + " \r\n\n");
    CHECK(read_key() == "");
    CHECK(key == good);
  }
  SECTION("a key readable by others") {
    write_text(path, good + "\n", 0644);
    auto err = read_key();
    CHECK_THAT(err, Contains(path) && Contains("0644")
                      && Contains("chmod 600 " + path));
    CHECK(key == "unchanged");
  }
  SECTION("a key readable by the group") {
    write_text(path, good + "\n", 0640);
    CHECK_THAT(read_key(), Contains("chmod 600"));
  }
  SECTION("a key with a non-hex digit") {
    write_text(path, std::string(63, 'a') + "g\n");
    CHECK_THAT(read_key(), Contains(path) && Contains("not 64 hex digits"));
  }
  SECTION("a key that is too short") {
    write_text(path, std::string(62, 'a') + "\n");
    CHECK_THAT(read_key(), Contains("not 64 hex digits"));
  }
  SECTION("a key that is too long") {
    write_text(path, std::string(66, 'a') + "\n");
    CHECK_THAT(read_key(), Contains("not 64 hex digits"));
  }
  SECTION("a missing file") {
    CHECK_THAT(read_key(), Contains(path) && Contains("no such file"));
  }
  CHECK((key == "unchanged" || key == good));
}

// -- certificates -------------------------------------------------------------

TEST_CASE("nodes with the same cluster key trust each other's certificates",
          "[runtime][security]") {
  scratch_dir keys;
  auto key = new_key_text(keys, "cluster.key");
  scratch_dir dir_a;
  scratch_dir dir_b;
  auto a = issue(key, "node-a", dir_a);
  auto b = issue(key, "node-b", dir_b);
  CHECK(a.ca == dir_a / "ca.pem");
  CHECK(a.cert == dir_a / "node.pem");
  CHECK(a.key == dir_a / "node.key");
  CHECK(file_mode(a.key) == 0600);
  CHECK(file_mode(a.cert) == 0600);
  CHECK(file_mode(a.ca) == 0600);
  // Each node's certificate verifies against its own and the other's CA.
  CHECK(!check_tls_files(a));
  CHECK(!check_tls_files(b));
  CHECK(!check_tls_files({b.ca, a.cert, a.key}));
  CHECK(!check_tls_files({a.ca, b.cert, b.key}));
  // Both derived the same CA: same name and key; the leaves differ.
  auto ca_a = load_cert(a.ca);
  auto ca_b = load_cert(b.ca);
  REQUIRE(ca_a);
  REQUIRE(ca_b);
  CHECK(X509_NAME_cmp(X509_get_subject_name(ca_a.get()),
                      X509_get_subject_name(ca_b.get()))
        == 0);
  CHECK(EVP_PKEY_eq(X509_get0_pubkey(ca_a.get()), X509_get0_pubkey(ca_b.get()))
        == 1);
  CHECK(ASN1_TIME_compare(X509_get0_notAfter(ca_a.get()),
                          X509_get0_notAfter(ca_b.get()))
        == 0);
  auto leaf_a = load_cert(a.cert);
  auto leaf_b = load_cert(b.cert);
  REQUIRE(leaf_a);
  REQUIRE(leaf_b);
  CHECK(
    EVP_PKEY_eq(X509_get0_pubkey(leaf_a.get()), X509_get0_pubkey(leaf_b.get()))
    != 1);
  char cn[64] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(leaf_a.get()), NID_commonName,
                            cn, sizeof(cn));
  CHECK(std::string{cn} == "node-a");
  X509_NAME_get_text_by_NID(X509_get_subject_name(ca_a.get()), NID_commonName,
                            cn, sizeof(cn));
  CHECK_THAT(std::string{cn}, Contains("troupe cluster CA "));
  CHECK(X509_check_ca(ca_a.get()) == 1);
  CHECK(X509_check_ca(leaf_a.get()) == 0);
}

TEST_CASE("nodes with different cluster keys reject each other",
          "[runtime][security]") {
  scratch_dir keys;
  scratch_dir dir_a;
  scratch_dir dir_c;
  auto a = issue(new_key_text(keys, "one.key"), "node-a", dir_a);
  auto c = issue(new_key_text(keys, "two.key"), "node-c", dir_c);
  auto ca_a = load_cert(a.ca);
  auto ca_c = load_cert(c.ca);
  REQUIRE(ca_a);
  REQUIRE(ca_c);
  CHECK(X509_NAME_cmp(X509_get_subject_name(ca_a.get()),
                      X509_get_subject_name(ca_c.get()))
        != 0);
  auto err = check_tls_files({c.ca, a.cert, a.key});
  CHECK_THAT(error_text(err), Contains("not signed by the CA")
                                && Contains(a.cert) && Contains(c.ca));
}

TEST_CASE("issue_from_key rejects a malformed key", "[runtime][security]") {
  scratch_dir dir;
  auto files = issue_from_key("abc", "n", dir.path);
  CHECK_THAT(why(files), Contains("not 64 hex digits"));
  CHECK(!files);
}

TEST_CASE("check_tls_files names the file and the problem",
          "[runtime][security]") {
  scratch_dir dir;
  constexpr long day = 24 * 3600;
  auto ca_key = new_key();
  auto leaf_key = new_key();
  auto other_key = new_key();
  REQUIRE(ca_key);
  REQUIRE(leaf_key);
  REQUIRE(other_key);
  auto ca = make_cert("test CA", ca_key.get(), nullptr, nullptr, -day, day);
  auto leaf
    = make_cert("node", leaf_key.get(), ca.get(), ca_key.get(), -day, day);
  tls_files files{dir / "ca.pem", dir / "node.pem", dir / "node.key"};
  write_cert(files.ca, ca.get());
  write_cert(files.cert, leaf.get());
  write_key(files.key, leaf_key.get());
  REQUIRE(!check_tls_files(files));
  SECTION("a missing file") {
    files.ca = dir / "nowhere.pem";
    CHECK_THAT(error_text(check_tls_files(files)),
               Contains(files.ca) && Contains("no such file"));
  }
  SECTION("a CA file that is no PEM certificate") {
    write_text(files.ca, "hello\n");
    CHECK_THAT(error_text(check_tls_files(files)),
               Contains(files.ca) && Contains("holds no PEM certificate"));
  }
  SECTION("a key where the certificate should be") {
    files.cert = files.key;
    CHECK_THAT(error_text(check_tls_files(files)),
               Contains(files.key) && Contains("holds no PEM certificate"));
  }
  SECTION("a certificate where the key should be") {
    files.key = files.cert;
    CHECK_THAT(error_text(check_tls_files(files)),
               Contains(files.cert) && Contains("holds no PEM private key"));
  }
  SECTION("a key that belongs to another certificate") {
    write_key(files.key, other_key.get());
    CHECK_THAT(error_text(check_tls_files(files)),
               Contains(files.key) && Contains(files.cert)
                 && Contains("does not belong"));
  }
  SECTION("an encrypted key") {
    write_key(files.key, leaf_key.get(), "secret123");
    CHECK_THAT(read_text(files.key), Contains("ENCRYPTED"));
    CHECK_THAT(error_text(check_tls_files(files)),
               Contains(files.key) && Contains("no passphrase was given"));
    CHECK_THAT(error_text(check_tls_files(files, "wrong")),
               Contains(files.key) && Contains("wrong passphrase"));
    CHECK(!check_tls_files(files, "secret123"));
  }
  SECTION("an expired certificate") {
    auto old = make_cert("node", leaf_key.get(), ca.get(), ca_key.get(),
                         -2 * day, -day);
    write_cert(files.cert, old.get());
    CHECK_THAT(error_text(check_tls_files(files)),
               Contains(files.cert) && Contains("expired on 20"));
  }
  SECTION("a certificate that is not valid yet") {
    auto young
      = make_cert("node", leaf_key.get(), ca.get(), ca_key.get(), day, 2 * day);
    write_cert(files.cert, young.get());
    CHECK_THAT(error_text(check_tls_files(files)),
               Contains(files.cert) && Contains("is not valid before"));
  }
  SECTION("a certificate only for servers") {
    auto server_only = make_cert("node", leaf_key.get(), ca.get(), ca_key.get(),
                                 -day, day, "serverAuth");
    write_cert(files.cert, server_only.get());
    CHECK_THAT(error_text(check_tls_files(files)),
               Contains(files.cert) && Contains("TLS clients"));
  }
  SECTION("a self-signed certificate") {
    auto self = make_cert("node", leaf_key.get(), nullptr, nullptr, -day, day);
    write_cert(files.cert, self.get());
    CHECK_THAT(error_text(check_tls_files(files)),
               Contains("not signed by the CA"));
  }
}

// -- probes -------------------------------------------------------------------

TEST_CASE("diagnose_tls explains how a handshake went", "[runtime][security]") {
  scratch_dir keys;
  scratch_dir dir_server;
  scratch_dir dir_friend;
  scratch_dir dir_foreign;
  auto key = new_key_text(keys, "cluster.key");
  auto server_files = issue(key, "server", dir_server);
  auto friend_files = issue(key, "friend", dir_friend);
  auto foreign_files
    = issue(new_key_text(keys, "foreign.key"), "foreign", dir_foreign);
  test_server server{test_server::kind::tls, server_files};
  auto started = steady::now();
  SECTION("a node of the same cluster") {
    CHECK(!diagnose_tls("127.0.0.1", server.port(), friend_files, 5s));
  }
  SECTION("a node of another cluster") {
    CHECK_THAT(
      error_text(diagnose_tls("127.0.0.1", server.port(), foreign_files, 5s)),
      Contains("the server's certificate is not signed by our cluster "
               "CA"));
  }
  SECTION("a server that trusts another CA than the one it got its "
          "certificate from") {
    // With TLS 1.3 our side completes the handshake before the server has
    // seen our certificate: the refusal arrives afterwards as an alert.
    tls_files confused{foreign_files.ca, server_files.cert, server_files.key};
    test_server picky{test_server::kind::tls, confused};
    CHECK_THAT(
      error_text(diagnose_tls("127.0.0.1", picky.port(), friend_files, 5s)),
      Contains("the server refused our certificate")
        && Contains("TLS alert: unknown ca"));
  }
  SECTION("a node whose certificate is not from its own CA") {
    // diagnose_tls checks our files first: they explain more than the server.
    tls_files mixed{friend_files.ca, foreign_files.cert, foreign_files.key};
    CHECK_THAT(error_text(diagnose_tls("127.0.0.1", server.port(), mixed, 5s)),
               Contains("our own TLS files are unusable")
                 && Contains("not signed by the CA"));
  }
  SECTION("a server that does not speak TLS") {
    test_server plain{test_server::kind::plain, {}};
    CHECK_THAT(
      error_text(diagnose_tls("127.0.0.1", plain.port(), friend_files, 5s)),
      Contains("does not speak TLS"));
  }
  SECTION("a server that never answers") {
    listener silent;
    CHECK_THAT(
      error_text(diagnose_tls("127.0.0.1", silent.port, friend_files, 300ms)),
      Contains("did not complete the TLS handshake within 300 ms"));
  }
  SECTION("a closed port") {
    CHECK_THAT(
      error_text(diagnose_tls("127.0.0.1", closed_port(), friend_files, 5s)),
      Contains("connection refused"));
  }
  SECTION("a node with an encrypted key") {
    auto* fp = std::fopen(friend_files.key.c_str(), "r");
    REQUIRE(fp != nullptr);
    pkey_ptr plain{PEM_read_PrivateKey(fp, nullptr, nullptr, nullptr)};
    std::fclose(fp);
    REQUIRE(plain);
    write_key(friend_files.key, plain.get(), "secret123");
    CHECK(
      !diagnose_tls("127.0.0.1", server.port(), friend_files, 5s, "secret123"));
    CHECK_THAT(
      error_text(diagnose_tls("127.0.0.1", server.port(), friend_files, 5s)),
      Contains("no passphrase was given"));
  }
  SECTION("our own files are broken") {
    tls_files broken{friend_files.ca, friend_files.cert, foreign_files.key};
    CHECK_THAT(error_text(diagnose_tls("127.0.0.1", server.port(), broken, 5s)),
               Contains("our own TLS files") && Contains("does not belong"));
  }
  CHECK(steady::now() - started < 5s);
}

TEST_CASE("probe_tcp tells an open port from a closed one",
          "[runtime][security]") {
  listener open_port;
  CHECK(!probe_tcp("127.0.0.1", open_port.port, 2s));
  CHECK(error_text(probe_tcp("127.0.0.1", closed_port(), 2s))
        == "connection refused");
}

TEST_CASE("is_loopback knows loopback addresses and names",
          "[runtime][security]") {
  for (auto host : {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost",
                    "LOCALHOST", "ip6-localhost", "::ffff:127.0.0.1"})
    CHECK(is_loopback(host));
  for (auto host : {"10.0.0.1", "128.0.0.1", "::2", "example.org", "",
                    "localhost.example.org", "0.0.0.0"})
    CHECK_FALSE(is_loopback(host));
}

TEST_CASE("make_private_dir creates a directory only its owner can enter",
          "[runtime][security]") {
  auto made = make_private_dir();
  REQUIRE(made);
  auto dir = *made;
  CHECK_THAT(dir, Contains("troupe-tls-"));
  CHECK(file_mode(dir) == 0700);
  write_text(dir + "/file", "x");
  remove_private_dir(dir);
  struct stat st {};
  CHECK(::stat(dir.c_str(), &st) != 0);
}

} // namespace troupe::security
