#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/error.hpp>

namespace troupe {

/// Opens a TCP connection to `host:port` with a non-blocking connect bounded
/// by `timeout`, then closes it. Returns no error if the peer accepted,
/// otherwise `errc::connect_failed` saying why not ("connection refused",
/// "timed out after 1000 ms", "cannot resolve host ..."; `error_text`
/// returns it). CAF's own connects block until the kernel gives up (about two
/// minutes for a silent host), so troupe probes first. Thread-safe.
[[nodiscard]] caf::error probe_tcp(const std::string& host, uint16_t port,
                                   std::chrono::milliseconds timeout);

/// Returns whether `host` is a loopback address or name (127.0.0.0/8, ::1,
/// "localhost"): where plain TCP is allowed without `--insecure`.
bool is_loopback(const std::string& host);

} // namespace troupe
