#include "signal_watcher.hpp"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "troupe/runtime/node.hpp"

namespace troupe::detail {

namespace {

sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

// Leaves the process without running destructors: the actors did not exit in
// time, so waiting for them in ~actor_system would hang. The exit code is the
// shell's for a process the signal ended (128 + `signo`): its work was cut
// short.
[[noreturn]] void leave_now(spdlog::logger& log, int signo) {
  log.flush();
  std::cout.flush();
  std::fflush(nullptr);
  std::_Exit(128 + signo);
}

} // namespace

signal_blocker::signal_blocker(bool enabled) : enabled_(enabled) {
  if (enabled_) {
    auto set = stop_signals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
  }
}

signal_blocker::~signal_blocker() {
  if (enabled_) {
    auto set = stop_signals();
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  }
}

signal_watcher::signal_watcher(node& n) : node_(n) {
  auto set = stop_signals();
  signal_fd_ = signalfd(-1, &set, SFD_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (signal_fd_ < 0 || wake_fd_ < 0)
    throw std::runtime_error(std::string{"cannot watch for signals: "}
                             + std::strerror(errno));
  thread_ = std::thread{[this] { run(); }};
}

signal_watcher::~signal_watcher() {
  uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) < 0)
    node_.log().error("cannot wake the signal watcher: {}",
                      std::strerror(errno));
  thread_.join();
  close(signal_fd_);
  close(wake_fd_);
}

void signal_watcher::run() {
  using clock = std::chrono::steady_clock;
  pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  bool stopping = false;
  int first_signal = 0;
  clock::time_point deadline;
  for (;;) {
    int timeout = -1;
    if (stopping) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - clock::now());
      timeout = static_cast<int>(std::max<int64_t>(left.count(), 0));
    }
    auto n = poll(fds, 2, timeout);
    if (n < 0 && errno == EINTR)
      continue;
    if (fds[1].revents & POLLIN) // the node is done
      return;
    if (n == 0 && stopping) {
      node_.log().warn("{} actor(s) still running {} after the stop signal; "
                       "exiting without waiting for them",
                       node_.system().registry().running(),
                       caf::deep_to_string(node_.cfg().shutdown_timeout));
      leave_now(node_.log(), first_signal);
    }
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info;
      if (read(signal_fd_, &info, sizeof(info)) != sizeof(info))
        continue;
      auto sig = info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM";
      if (stopping) {
        node_.log().warn("second {}: exiting now", sig);
        leave_now(node_.log(), static_cast<int>(info.ssi_signo));
      }
      node_.log().info("{}: stopping the node", sig);
      stopping = true;
      first_signal = static_cast<int>(info.ssi_signo);
      deadline = clock::now() + node_.cfg().shutdown_timeout;
      node_.stop_by_signal(static_cast<int>(info.ssi_signo));
    }
  }
}

} // namespace troupe::detail
