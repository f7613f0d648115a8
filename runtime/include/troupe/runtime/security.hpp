#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace troupe::security {

/// Paths of the PEM files that mutual TLS needs: the trusted CA, this node's
/// certificate chain and its private key.
struct tls_files {
  std::string ca;
  std::string cert;
  std::string key;
};

/// Writes a new random cluster key (32 bytes from OpenSSL's RAND_bytes, as
/// 64 hex digits and a newline) to `path`, created with mode 0600. Refuses to
/// overwrite an existing file. Returns an empty string on success, otherwise
/// a message naming the file and the cause.
std::string write_key_file(const std::string& path);

/// Reads the key file at `path` into `key`. Returns an empty string on
/// success, otherwise a message naming the file and the cause: missing,
/// unreadable, readable by group or others (must be 0600 or stricter), not
/// 64 hex digits.
std::string read_key_file(const std::string& path, std::string& key);

/// Derives the cluster CA from `key` and issues this node a certificate:
/// every node holding the same key derives the same CA (same private key,
/// same name, same validity), and each issues its own leaf certificate (a
/// fresh key, CN = `node_name`, valid from an hour ago for a year) signed by
/// it. Writes `ca.pem`, `node.pem` and `node.key` (mode 0600) into `dir`,
/// which must exist and should be private (e.g. made by `make_private_dir`),
/// and sets `out` to their paths. Returns an empty string on success,
/// otherwise what failed.
std::string issue_from_key(const std::string& key, const std::string& node_name,
                           const std::string& dir, tls_files& out);

/// Creates a fresh directory only the current user can read (mode 0700) under
/// `$TMPDIR` or `/tmp`, sets `dir` to its path and returns an empty string,
/// or returns what failed. `remove_private_dir` deletes it again.
std::string make_private_dir(std::string& dir);

/// Deletes `dir` and the files in it (not recursive beyond one level).
void remove_private_dir(const std::string& dir);

/// Checks TLS files before the actor system starts (CAF aborts, hangs or
/// terminates on bad ones): each file exists and parses as PEM of the right
/// kind, the key opens (with `passphrase` if it is encrypted), the key
/// matches the certificate, the certificate is signed by the CA and is valid
/// now. Returns an empty string if all is well, otherwise a message that
/// names the file and the problem.
std::string check_tls_files(const tls_files& files,
                            const std::string& passphrase = "");

/// Tries a TLS handshake with `host:port` as a client presenting `files`,
/// and explains the outcome in one sentence for the user, e.g. "the server's
/// certificate is not signed by our cluster CA (different --authkey-file or
/// --tls-ca?): ...", "the server refused our certificate (TLS alert: unknown
/// ca); ...", "the server does not speak TLS (plain --insecure node?)". For
/// use after CAF reported `disconnect_during_handshake`, which says nothing
/// of the cause. Checks `files` first (as `check_tls_files` does) and reports
/// their problems instead ("our own TLS files are unusable: ..."). Never takes
/// longer than `timeout` (name resolution aside). Returns an empty string if
/// the handshake succeeds and the server does not object to our certificate
/// afterwards (TLS 1.3 servers check it after the client has finished).
std::string diagnose_tls(const std::string& host, uint16_t port,
                         const tls_files& files,
                         std::chrono::milliseconds timeout);

/// Same as `diagnose_tls` above for an encrypted key: `passphrase` opens it.
std::string diagnose_tls(const std::string& host, uint16_t port,
                         const tls_files& files,
                         std::chrono::milliseconds timeout,
                         const std::string& passphrase);

/// Opens a TCP connection to `host:port` with a non-blocking connect bounded
/// by `timeout`, then closes it. Returns an empty string if the peer
/// accepted, otherwise why not ("connection refused", "timed out after
/// 1000 ms", "cannot resolve host"). CAF's own connects block until the
/// kernel gives up (about two minutes for a silent host), so troupe probes
/// first.
std::string probe_tcp(const std::string& host, uint16_t port,
                      std::chrono::milliseconds timeout);

/// Returns whether `host` is a loopback address or name (127.0.0.0/8, ::1,
/// "localhost"): where plain TCP is allowed without `--insecure`.
bool is_loopback(const std::string& host);

} // namespace troupe::security
