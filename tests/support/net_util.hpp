#pragma once

// Helpers for the tests that run networked programs: a directory of cluster
// keys, raw bytes sent to a port, a process's memory.

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <catch2/catch.hpp>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "process.hpp"

namespace troupe::test {

/// A temporary directory with a cluster key made by `troupe keygen`
/// (`key()`), and more keys on request (`make_key`); the destructor removes
/// them and the directory.
class key_dir {
public:
  key_dir(const key_dir&) = delete;
  key_dir& operator=(const key_dir&) = delete;

  key_dir() {
    char tmpl[] = "/tmp/troupe-key-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir_ = tmpl;
    key_ = make_key("cluster.key");
  }

  ~key_dir() {
    for (auto& f : files_)
      std::remove(f.c_str());
    ::rmdir(dir_.c_str());
  }

  /// Makes another key, `name` in the directory, and returns its path.
  std::string make_key(const std::string& name) {
    auto path = dir_ + "/" + name;
    files_.push_back(path);
    auto r
      = run_process({bin("troupe"), "keygen", path}, std::chrono::seconds(60));
    REQUIRE(r.exit_code == 0);
    return path;
  }

  const std::string& key() const {
    return key_;
  }

  const std::string& dir() const {
    return dir_;
  }

private:
  std::string dir_;
  std::string key_;
  std::vector<std::string> files_;
};

/// Returns a TCP socket connected to 127.0.0.1:`port` (Catch2 `REQUIRE`s
/// that it connects); the caller closes it.
inline int connect_loopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  return fd;
}

/// Connects to 127.0.0.1:`port`, sends `bytes`, and waits (bounded) for the
/// peer to close the connection; returns whether it did.
inline bool send_raw(uint16_t port, const std::string& bytes) {
  int fd = connect_loopback(port);
  // The peer may close while we are still sending; that is fine.
  ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  bool closed = false;
  char buf[4096];
  for (int i = 0; i < 20 && !closed; ++i) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) > 0) {
      auto n = ::recv(fd, buf, sizeof(buf), 0);
      closed = n <= 0;
    }
  }
  ::close(fd);
  return closed;
}

/// Returns the resident memory of process `pid` in KiB (0 if unknown).
inline long rss_kib(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      long kib = 0;
      in >> kib;
      return kib;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

} // namespace troupe::test
