#include "process.hpp"

#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace troupe::test {

namespace {

void close_fd(int& fd) {
  if (fd >= 0)
    ::close(fd);
  fd = -1;
}

std::runtime_error sys_error(const std::string& what, int code) {
  return std::runtime_error{what + ": " + std::strerror(code)};
}

// Converts `d` to a poll(2) timeout in whole milliseconds, rounded up so that
// a wait never ends just before its deadline.
int poll_timeout(std::chrono::steady_clock::duration d) {
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(d).count();
  return ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

// Runs in the forked child, so only async-signal-safe calls: wires up the
// standard streams, resets the signal state the test process may have
// changed, and execs. On failure, reports errno through `status_fd`.
[[noreturn]] void exec_child(char** args, int in_fd, int out_fd, int err_fd,
                             int status_fd) {
  if (::dup2(in_fd, STDIN_FILENO) >= 0 && ::dup2(out_fd, STDOUT_FILENO) >= 0
      && ::dup2(err_fd, STDERR_FILENO) >= 0) {
    struct sigaction dfl = {};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGINT, SIGTERM, SIGPIPE})
      ::sigaction(sig, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(args[0], args);
  }
  int code = errno;
  [[maybe_unused]] auto n = ::write(status_fd, &code, sizeof(code));
  ::_exit(127);
}

} // namespace

// -- child_process ------------------------------------------------------------

child_process::child_process(const std::vector<std::string>& argv) {
  if (argv.empty())
    throw std::runtime_error{"child_process: empty argv"};
  // Everything the child needs is prepared before fork().
  std::vector<char*> args;
  for (auto& x : argv)
    args.push_back(const_cast<char*>(x.c_str()));
  args.push_back(nullptr);
  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  int status[2] = {-1, -1};
  int in = -1;
  auto close_all = [&] {
    for (int* fd :
         {&out[0], &out[1], &err[0], &err[1], &status[0], &status[1], &in})
      close_fd(*fd);
  };
  // O_CLOEXEC: no other child started meanwhile inherits these descriptors.
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0
      || ::pipe2(status, O_CLOEXEC) != 0
      || (in = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
    auto code = errno;
    close_all();
    throw sys_error("child_process: cannot create pipes", code);
  }
  started_ = clock::now();
  pid_ = ::fork();
  if (pid_ < 0) {
    auto code = errno;
    close_all();
    throw sys_error("child_process: fork failed", code);
  }
  if (pid_ == 0)
    exec_child(args.data(), in, out[1], err[1], status[1]);
  close_fd(out[1]);
  close_fd(err[1]);
  close_fd(status[1]);
  close_fd(in);
  // The status pipe closes on a successful exec (O_CLOEXEC) or carries the
  // errno of a failed one.
  int code = 0;
  ssize_t n = 0;
  do {
    n = ::read(status[0], &code, sizeof(code));
  } while (n < 0 && errno == EINTR);
  close_fd(status[0]);
  if (n > 0) {
    ::waitpid(pid_, nullptr, 0);
    close_all();
    throw sys_error("child_process: cannot run '" + argv[0] + "'", code);
  }
  out_fd_ = out[0];
  err_fd_ = err[0];
  ::fcntl(out_fd_, F_SETFL, O_NONBLOCK);
  ::fcntl(err_fd_, F_SETFL, O_NONBLOCK);
  // A pidfd becomes readable when the child exits, so poll() wakes up for
  // that too. Without one (kernel < 5.3), `pump` polls in short slices.
  pid_fd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  if (pid_fd_ >= 0)
    ::fcntl(pid_fd_, F_SETFD, FD_CLOEXEC);
}

child_process::~child_process() {
  if (!reaped_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  close_fd(out_fd_);
  close_fd(err_fd_);
  close_fd(pid_fd_);
}

void child_process::send_signal(int sig) {
  if (!try_reap())
    ::kill(pid_, sig);
}

bool child_process::wait_for_stdout(const std::string& text,
                                    std::chrono::milliseconds timeout) {
  return wait_for(out_fd_, result_.out, text, timeout);
}

bool child_process::wait_for_stderr(const std::string& text,
                                    std::chrono::milliseconds timeout) {
  return wait_for(err_fd_, result_.err, text, timeout);
}

bool child_process::wait_for_count(const std::string& text, size_t n,
                                   std::chrono::milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  size_t found = 0;
  size_t from = 0; // occurrences before this position are counted
  for (;;) {
    for (auto pos = result_.out.find(text, from); pos != std::string::npos;
         pos = result_.out.find(text, from)) {
      ++found;
      from = pos + text.size();
    }
    if (found >= n)
      return true;
    if (out_fd_ < 0)
      return false;
    auto now = clock::now();
    if (now >= deadline)
      return false;
    pump(deadline - now);
  }
}

process_result child_process::wait(std::chrono::milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  while (!try_reap()) {
    auto now = clock::now();
    if (now >= deadline) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        // retry
      }
      result_.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        clock::now() - started_);
      result_.term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
      result_.timed_out = true;
      reaped_ = true;
      close_fd(pid_fd_);
      break;
    }
    pump(deadline - now);
  }
  // The child is gone, so what it wrote is in the pipes now. Stop at the
  // first empty read rather than at end of file: a grandchild may still hold
  // the pipes open.
  drain(out_fd_, result_.out);
  drain(err_fd_, result_.err);
  close_fd(out_fd_);
  close_fd(err_fd_);
  return result_;
}

bool child_process::pump(clock::duration timeout) {
  if (out_fd_ < 0 && err_fd_ < 0 && reaped_)
    return false;
  pollfd fds[] = {
    {out_fd_, POLLIN, 0},
    {err_fd_, POLLIN, 0},
    {reaped_ ? -1 : pid_fd_, POLLIN, 0}, // poll() skips negative descriptors
  };
  auto ms = poll_timeout(timeout);
  if (pid_fd_ < 0 && !reaped_ && ms > 10)
    ms = 10;
  if (::poll(fds, 3, ms) < 0 && errno != EINTR)
    throw sys_error("child_process: poll failed", errno);
  drain(out_fd_, result_.out);
  drain(err_fd_, result_.err);
  try_reap();
  return true;
}

bool child_process::try_reap() {
  if (reaped_)
    return true;
  int status = 0;
  pid_t r = 0;
  do {
    r = ::waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0)
    return false;
  result_.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
    clock::now() - started_);
  if (r == pid_) {
    result_.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result_.term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  }
  reaped_ = true;
  close_fd(pid_fd_);
  return true;
}

void child_process::drain(int& fd, std::string& buf) {
  if (fd < 0)
    return;
  char chunk[4096];
  for (;;) {
    auto n = ::read(fd, chunk, sizeof(chunk));
    if (n > 0) {
      buf.append(chunk, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return;
    } else { // end of file or a read error: nothing more will come
      close_fd(fd);
      return;
    }
  }
}

bool child_process::wait_for(const int& fd, const std::string& buf,
                             const std::string& text,
                             std::chrono::milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  size_t from = 0; // text cannot start before this position of `buf`
  for (;;) {
    if (buf.find(text, from) != std::string::npos)
      return true;
    if (fd < 0)
      return false;
    from = buf.size() >= text.size() ? buf.size() - text.size() + 1 : 0;
    auto now = clock::now();
    if (now >= deadline)
      return false;
    pump(deadline - now);
  }
}

// -- free functions -----------------------------------------------------------

process_result run_process(const std::vector<std::string>& argv,
                           std::chrono::milliseconds timeout) {
  child_process child{argv};
  return child.wait(timeout);
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> result;
  size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string::npos) {
      result.push_back(text.substr(pos));
      break;
    }
    result.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return result;
}

std::string bin(const std::string& name) {
  return std::string{TROUPE_BIN_DIR} + "/" + name;
}

} // namespace troupe::test
