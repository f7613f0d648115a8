#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <sys/types.h>

namespace troupe::test {

/// What a child process did: how it ended and everything it printed.
struct process_result {
  /// The exit status if the child exited normally, otherwise -1.
  int exit_code = -1;
  /// The signal that ended the child, otherwise 0.
  int term_signal = 0;
  /// Whether the harness killed the child with SIGKILL because it did not
  /// exit in time (then `term_signal` is SIGKILL).
  bool timed_out = false;
  /// Everything the child wrote to stdout.
  std::string out;
  /// Everything the child wrote to stderr.
  std::string err;
  /// Time from starting the child until it exited (or was killed).
  std::chrono::milliseconds elapsed{0};
};

/// Runs `argv[0]` (a path, not looked up in `PATH`) with the arguments
/// `argv[1..]`, stdin from `/dev/null`, capturing stdout and stderr. Kills the
/// child with SIGKILL if it runs longer than `timeout` (then `timed_out` is
/// true). Throws `std::runtime_error` if the program cannot be started.
process_result run_process(const std::vector<std::string>& argv,
                           std::chrono::milliseconds timeout);

/// A running child process whose stdout and stderr the harness captures, for
/// tests that interact with it (wait for a line, send a signal, wait for the
/// exit). Linux only: fork/exec, pipes and poll.
///
/// The child starts with stdin from `/dev/null`, an empty signal mask and the
/// default disposition for SIGINT, SIGTERM and SIGPIPE, whatever the test
/// process did to them. Output is read only while a member function runs; a
/// child that prints more than a pipe holds (64 KiB) blocks until then.
///
/// Not thread-safe: use one `child_process` from one thread.
class child_process {
public:
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  /// Starts `argv[0]` (a path) with the arguments `argv[1..]`.
  /// @throws std::runtime_error if it cannot start (e.g. no such program).
  explicit child_process(const std::vector<std::string>& argv);

  /// SIGKILLs and reaps the child if it is still running.
  ~child_process();

  /// Returns the child's process id.
  pid_t pid() const {
    return pid_;
  }

  /// Sends `sig` to the child; does nothing once it has been reaped.
  void send_signal(int sig);

  /// Reads output until stdout contains `text` or `timeout` passes; returns
  /// whether it appeared. Returns false early if the child closed stdout.
  bool wait_for_stdout(const std::string& text,
                       std::chrono::milliseconds timeout);

  /// Same as `wait_for_stdout` for stderr.
  bool wait_for_stderr(const std::string& text,
                       std::chrono::milliseconds timeout);

  /// Returns what the child printed to stdout so far (as read by the calls
  /// above).
  const std::string& out() const {
    return result_.out;
  }

  /// Reads output until stdout holds `n` occurrences of `text` or `timeout`
  /// passes; returns whether they appeared.
  bool wait_for_count(const std::string& text, size_t n,
                      std::chrono::milliseconds timeout);

  /// Waits for the child to exit, SIGKILLing it after `timeout`, and collects
  /// the rest of its output: `out` and `err` of the result hold everything the
  /// child printed since it started. Calling it again returns the same result.
  process_result wait(std::chrono::milliseconds timeout);

private:
  using clock = std::chrono::steady_clock;

  // Waits up to `timeout` for output or for the child's exit and reads what
  // is there; returns false if nothing can happen any more (pipes closed and
  // child reaped).
  bool pump(clock::duration timeout);

  // Reaps the child if it has exited; returns whether it has been reaped.
  bool try_reap();

  // Reads what `fd` holds into `buf`; closes `fd` at end of file.
  static void drain(int& fd, std::string& buf);

  // Pumps until `buf` contains `text` (true), `fd` is closed or `timeout`
  // passes (false).
  bool wait_for(const int& fd, const std::string& buf, const std::string& text,
                std::chrono::milliseconds timeout);

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  int pid_fd_ = -1; // readable once the child exits; -1 if unsupported
  bool reaped_ = false;
  clock::time_point started_;
  process_result result_;
};

/// Splits `text` into lines at '\n'; a final newline adds no empty line.
std::vector<std::string> lines(const std::string& text);

/// Returns the path of the program `name` built by this project, i.e.
/// `TROUPE_BIN_DIR "/" name`.
std::string bin(const std::string& name);

} // namespace troupe::test
