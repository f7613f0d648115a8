#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "troupe/runtime/errc.hpp"

namespace troupe::security {

/// Paths of the PEM files that mutual TLS needs: the trusted CA, this node's
/// certificate chain and its private key.
struct tls_files {
  std::string ca;
  std::string cert;
  std::string key;
};

// The functions below return troupe errors (`errc`) whose message, as
// `troupe::error_text` returns it, is the text to show the user.

/// Writes a new random cluster key (32 bytes from OpenSSL's RAND_bytes, as
/// 64 hex digits and a newline) to `path`, created with mode 0600. Refuses to
/// overwrite an existing file. Returns no error on success, otherwise
/// `errc::cannot_open_file` (the file cannot be created or written) or
/// `errc::tls_config` (no path given, the file exists already, no random
/// bytes) with a message naming the file and the cause.
[[nodiscard]] caf::error write_key_file(const std::string& path);

/// Reads the key file at `path`. Returns the key (64 lowercase hex digits),
/// otherwise `errc::cannot_open_file` (missing, unreadable) or
/// `errc::tls_config` (no path given; not a regular file; readable by group
/// or others, i.e. not 0600 or stricter; not 64 hex digits) with a message
/// naming the file and the cause.
[[nodiscard]] caf::expected<std::string> read_key_file(const std::string& path);

/// Returns where the cookie lives unless `--cookie-file` says otherwise:
/// `$TROUPE_COOKIE_FILE` if set, else `$HOME/.troupe/cookie`; an empty
/// string if neither variable is set.
std::string default_cookie_file();

/// Returns the cookie in `path`, a key file (see `read_key_file`) that
/// authenticates plain-TCP peers to each other: only processes that can read
/// it get past a port's preamble, as with Erlang's cookie. Creates it (and
/// its directory, mode 0700) on first use, atomically: two processes starting
/// at once get the same cookie. Errors as for `read_key_file` and
/// `write_key_file`, naming the file.
[[nodiscard]] caf::expected<std::string>
load_or_create_cookie(const std::string& path);

/// Derives the cluster CA from `key` and issues this node a certificate:
/// every node holding the same key derives the same CA (same private key,
/// same name, same validity), and each issues its own leaf certificate (a
/// fresh key, CN = `node_name`, valid from an hour ago for a year) signed by
/// it. Writes `ca.pem`, `node.pem` and `node.key` (mode 0600) into `dir`,
/// which must exist and should be private (e.g. made by `make_private_dir`).
/// Returns their paths, otherwise what failed: `errc::tls_config` (a
/// malformed key, an OpenSSL failure) or `errc::cannot_open_file` (a file
/// cannot be written).
[[nodiscard]] caf::expected<tls_files>
issue_from_key(const std::string& key, const std::string& node_name,
               const std::string& dir);

/// Creates a fresh directory only the current user can read (mode 0700) under
/// `$TMPDIR` or `/tmp` and returns its path, or `errc::cannot_open_file`
/// saying what failed. `remove_private_dir` deletes it again.
[[nodiscard]] caf::expected<std::string> make_private_dir();

/// Deletes `dir` and the files in it (not recursive beyond one level).
void remove_private_dir(const std::string& dir);

/// Checks TLS files before the actor system starts (CAF aborts, hangs or
/// terminates on bad ones): each file exists and parses as PEM of the right
/// kind, the key opens (with `passphrase` if it is encrypted), the key
/// matches the certificate, the certificate is signed by the CA and is valid
/// now. Returns no error if all is well, otherwise `errc::cannot_open_file`
/// (a path is empty, a file is missing, unreadable, not a regular file or
/// larger than 1 MiB) or `errc::tls_config` (anything else) with a message
/// that names the file and the problem.
[[nodiscard]] caf::error check_tls_files(const tls_files& files,
                                         const std::string& passphrase = "");

/// Tries a TLS handshake with `host:port` as a client presenting `files`,
/// and explains the outcome in one sentence for the user, e.g. "the server's
/// certificate is not signed by our cluster CA (different --authkey-file or
/// --tls-ca?): ...", "the server refused our certificate (TLS alert: unknown
/// ca); ...", "the server does not speak TLS (plain --insecure node?)". For
/// use after CAF reported `disconnect_during_handshake`, which says nothing
/// of the cause. Checks `files` first (as `check_tls_files` does) and reports
/// their problems instead ("our own TLS files are unusable: ..."). Never takes
/// longer than `timeout` (name resolution aside). Returns no error if the
/// handshake succeeds and the server does not object to our certificate
/// afterwards (TLS 1.3 servers check it after the client has finished);
/// otherwise `errc::tls_config` if our own files or OpenSSL fail us, or
/// `errc::connect_failed` with what the server did.
[[nodiscard]] caf::error diagnose_tls(const std::string& host, uint16_t port,
                                      const tls_files& files,
                                      std::chrono::milliseconds timeout);

/// Same as `diagnose_tls` above for an encrypted key: `passphrase` opens it.
[[nodiscard]] caf::error diagnose_tls(const std::string& host, uint16_t port,
                                      const tls_files& files,
                                      std::chrono::milliseconds timeout,
                                      const std::string& passphrase);

} // namespace troupe::security
