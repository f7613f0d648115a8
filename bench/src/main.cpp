// troupe_bench: runs each workload for raw CAF (its default 'stealing'
// scheduler and 'sharing'), for troupe and for the seed's Python programs,
// every run in a fresh child process with a time limit, and prints the
// medians and the troupe/raw-CAF ratios as a Markdown table.
//
//   troupe_bench [--runs N] [--quick] [--timeout S] [--only LIST] ...
//   troupe_bench --one WORKLOAD VARIANT N K     (one run; what the parent
//                                                 executes in each child)

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <caf/config.hpp>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.hpp"
#include "streams.hpp"

#ifndef TROUPE_BENCH_BUILD_TYPE
#  define TROUPE_BENCH_BUILD_TYPE "unknown"
#endif
#ifndef TROUPE_BENCH_PYTHON_SCRIPT
#  define TROUPE_BENCH_PYTHON_SCRIPT ""
#endif

namespace troupe::bench {

namespace {

using std::chrono::steady_clock;

// -- what to run --------------------------------------------------------------

const char* const variants[]
  = {"caf", "caf-sharing", "troupe", "python", "ring"};
constexpr size_t num_variants = 5;
constexpr size_t caf_col = 0;
constexpr size_t sharing_col = 1;
constexpr size_t troupe_col = 2;
constexpr size_t python_col = 3;
constexpr size_t ring_col = 4;

enum class kind { rate, seconds, bytes };

struct metric {
  std::string label;
  std::string unit;
  kind k;
};

struct bench_def {
  std::string id;       // what --only matches (by prefix)
  std::string workload; // for --one and reference.py
  int64_t n = 0;
  int32_t k = 0;
  int64_t python_n = 0; // 0: no Python reference
  std::string what;     // how much work one run does, for the notes
  std::vector<metric> metrics;
  bool ring = false; // whether the lock-free ring runs it too (`stream`)
};

struct options {
  int runs = 5;
  bool runs_given = false;
  bool quick = false;
  int timeout_s = 60;
  int64_t actors = 1'000'000;
  bool python = true;
  std::vector<std::string> only;
  std::string svg;
};

std::string with_commas(int64_t x) {
  auto s = std::to_string(x < 0 ? -x : x);
  for (auto i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<size_t>(i), ",");
  return x < 0 ? "-" + s : s;
}

std::vector<bench_def> make_benches(const options& opt) {
  // Full counts: each run takes about 0.3-2 s on a 2-core box (the spawns
  // longer: the issue fixes them at 1,000,000 actors). Python runs a
  // different number of iterations, sized to a similar duration.
  int64_t rounds = opt.quick ? 20'000 : 300'000;
  int64_t fan_total = opt.quick ? 200'000 : 2'000'000;
  int64_t actors = opt.quick ? 20'000 : opt.actors;
  int64_t py_rounds = opt.quick ? 100'000 : 5'000'000;
  int64_t py_fan_total = opt.quick ? 40'000 : 300'000;
  int64_t py_actors = actors;
  std::vector<bench_def> result;
  result.push_back({"ping-pong",
                    "ping-pong",
                    rounds,
                    0,
                    py_rounds,
                    with_commas(rounds) + " request/reply round trips "
                      + "between two actors (Python: " + with_commas(py_rounds)
                      + " `c.send(n)` calls)",
                    {{"ping-pong", "round trips/s", kind::rate}}});
  for (int32_t k : {2, 8}) {
    auto k_str = std::to_string(k);
    result.push_back(
      {"fan-in-" + k_str,
       "fan-in",
       fan_total / k,
       k,
       py_fan_total / k,
       with_commas(fan_total) + " messages from " + k_str
         + " senders to one actor (Python: " + with_commas(py_fan_total)
         + " items, " + k_str + " threads, one `queue.Queue`)",
       {{"fan-in, " + k_str + " senders", "messages/s", kind::rate}}});
  }
  auto a_str = with_commas(actors);
  result.push_back(
    {"spawn-main",
     "spawn-main",
     actors,
     0,
     py_actors,
     a_str + " actors spawned from `main` (`sys.spawn` / `node::spawn`), "
       + "then one message each, until all have exited (Python: " + a_str
       + " generators created, primed, sent one value)",
     {{"spawn " + a_str + " from main", "s (lower is better)", kind::seconds},
      {"spawn " + a_str + " from main, memory", "bytes/actor (lower is better)",
       kind::bytes}}});
  result.push_back(
    {"spawn-actor",
     "spawn-actor",
     actors,
     0,
     0,
     a_str + " actors spawned by one actor (`self->spawn`), "
       + "which then sends each one message; until all have exited",
     {{"spawn " + a_str + " from one actor", "s (lower is better)",
       kind::seconds},
      {"spawn " + a_str + " from one actor, memory",
       "bytes/actor (lower is better)", kind::bytes}}});
  // A tenth as many, so that raw CAF's default ('stealing'), which gets
  // quadratic here, finishes within the time limit and has a number.
  auto small = std::max<int64_t>(actors / 10, 1);
  auto s_str = with_commas(small);
  result.push_back({"spawn-actor-small",
                    "spawn-actor",
                    small,
                    0,
                    0,
                    "as spawn-actor, with " + s_str + " actors",
                    {{"spawn " + s_str + " from one actor",
                      "s (lower is better)", kind::seconds}}});
  // Streams: items/s from a producer to a consumer. Raw CAF sends one
  // message per item; troupe streams batches under credit; the ring is two
  // threads and no actors. stream-reply runs on one scheduler thread.
  int64_t stream_items = opt.quick ? 1'000'000 : 10'000'000;
  int64_t reply_items = opt.quick ? 100'000 : 4'000'000;
  auto st_str = with_commas(stream_items);
  result.push_back(
    {"stream",
     "stream",
     stream_items,
     0,
     0,
     st_str + " int32_t items from a producer to a consumer that sums them "
       + "(caf: one message each; troupe: a stream source and sink, batches "
       + "of 256, a window of 4,096; ring: two threads on a lock-free ring of "
       + "4,096 slots)",
     {{"stream, producer -> consumer", "items/s", kind::rate},
      {"stream, memory", "peak RSS growth, bytes (lower is better)",
       kind::bytes}},
     true});
  auto re_str = with_commas(reply_items);
  result.push_back(
    {"stream-reply",
     "stream-reply",
     reply_items,
     0,
     py_rounds,
     re_str + " items, each answered with \"200 OK\", on one scheduler "
       + "thread (caf: request/reply per item; troupe: a request source and "
       + "a reply sink, batches of 256 items and of 256 replies; Python: "
       + with_commas(py_rounds) + " `c.send(n)` calls, as ping-pong)",
     {{"stream with a reply per item, one thread", "items/s", kind::rate}}});
  if (!opt.only.empty()) {
    auto selected = [&](const bench_def& b) {
      return std::any_of(opt.only.begin(), opt.only.end(),
                         [&](const std::string& x) {
                           return b.id.compare(0, x.size(), x) == 0;
                         });
    };
    result.erase(std::remove_if(result.begin(), result.end(),
                                [&](auto& b) { return !selected(b); }),
                 result.end());
  }
  return result;
}

// -- child processes ----------------------------------------------------------

enum class status { ok, timeout, failed };

struct child_outcome {
  status st = status::failed;
  std::string out; // its stdout
  std::string detail;
};

// Runs `args` (searched in PATH) with stdout captured; kills it with SIGKILL
// once `timeout` has passed.
child_outcome run_child(const std::vector<std::string>& args,
                        std::chrono::seconds timeout) {
  child_outcome result;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    result.detail = std::string{"pipe: "} + std::strerror(errno);
    return result;
  }
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  auto pid = fork();
  if (pid < 0) {
    result.detail = std::string{"fork: "} + std::strerror(errno);
    close(fds[0]);
    close(fds[1]);
    return result;
  }
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    std::vector<char*> argv;
    for (auto& x : args)
      argv.push_back(const_cast<char*>(x.c_str()));
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  auto deadline = steady_clock::now() + timeout;
  auto ms_left = [&] {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - steady_clock::now());
    return static_cast<int>(std::max<int64_t>(left.count(), 0));
  };
  auto kill_child = [&] {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    result.st = status::timeout;
  };
  // Read until EOF (the child exited or closed stdout) or the deadline.
  bool eof = false;
  while (!eof) {
    auto left = ms_left();
    if (left == 0) {
      close(fds[0]);
      kill_child();
      return result;
    }
    pollfd p{fds[0], POLLIN, 0};
    auto rc = poll(&p, 1, left);
    if (rc < 0 && errno != EINTR)
      break;
    if (rc <= 0)
      continue;
    char buf[4096];
    auto n = read(fds[0], buf, sizeof(buf));
    if (n > 0)
      result.out.append(buf, static_cast<size_t>(n));
    else if (n == 0 || errno != EINTR)
      eof = true;
  }
  close(fds[0]);
  // Then wait for it to exit, still within the deadline.
  int wstatus = 0;
  for (;;) {
    auto rc = waitpid(pid, &wstatus, WNOHANG);
    if (rc == pid)
      break;
    if (rc < 0 && errno != EINTR) {
      result.detail = std::string{"waitpid: "} + std::strerror(errno);
      return result;
    }
    if (ms_left() == 0) {
      kill_child();
      return result;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) {
    result.st = status::ok;
  } else if (WIFEXITED(wstatus)) {
    result.detail = "exit " + std::to_string(WEXITSTATUS(wstatus));
  } else if (WIFSIGNALED(wstatus)) {
    result.detail = std::string{"signal "} + strsignal(WTERMSIG(wstatus));
  }
  return result;
}

// Returns the numbers of the child's `result ...` line, if any.
std::optional<std::vector<double>> parse_result(const std::string& out) {
  std::istringstream in{out};
  std::string line;
  std::optional<std::vector<double>> result;
  while (std::getline(in, line)) {
    if (line.compare(0, 7, "result ") != 0)
      continue;
    std::istringstream fields{line.substr(7)};
    std::vector<double> xs;
    double x = 0;
    while (fields >> x)
      xs.push_back(x);
    if (!xs.empty())
      result = std::move(xs);
  }
  return result;
}

// -- the machine --------------------------------------------------------------

std::string self_exe() {
  char buf[4096];
  auto n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0)
    return "troupe_bench";
  return std::string(buf, static_cast<size_t>(n));
}

std::string first_field(const char* path, const std::string& key) {
  std::ifstream in{path};
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) != 0)
      continue;
    auto colon = line.find(':');
    if (colon == std::string::npos)
      continue;
    auto value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    return value;
  }
  return "unknown";
}

std::string mem_total() {
  std::istringstream in{first_field("/proc/meminfo", "MemTotal")};
  double kib = 0;
  if (!(in >> kib))
    return "unknown";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f GiB", kib / (1024 * 1024));
  return buf;
}

std::string load_average() {
  std::ifstream in{"/proc/loadavg"};
  std::string a;
  std::string b;
  std::string c;
  in >> a >> b >> c;
  return a + " " + b + " " + c + " (1, 5, 15 min)";
}

bool in_path(const std::string& prog) {
  const char* path = std::getenv("PATH");
  if (path == nullptr)
    return false;
  std::istringstream dirs{path};
  std::string dir;
  while (std::getline(dirs, dir, ':'))
    if (!dir.empty() && access((dir + "/" + prog).c_str(), X_OK) == 0)
      return true;
  return false;
}

std::string now_utc() {
  auto t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

std::string compiler() {
#if defined(__clang__)
  return std::string{"clang "} + __clang_version__;
#elif defined(__GNUC__)
  return std::string{"g++ "} + __VERSION__;
#else
  return "unknown compiler";
#endif
}

// -- results ------------------------------------------------------------------

// All runs of one workload for one variant.
struct cell {
  std::vector<std::vector<double>> runs; // per run: one value per metric
  bool timed_out = false;
  std::string failure; // why it stopped early, if it failed
  std::string absent;  // why it never ran ("—" when not applicable)
};

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  auto n = xs.size();
  return n % 2 == 1 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
}

std::optional<double> cell_median(const cell& c, size_t m) {
  if (c.timed_out || !c.failure.empty() || c.runs.empty())
    return std::nullopt;
  std::vector<double> xs;
  for (auto& r : c.runs)
    if (m < r.size())
      xs.push_back(r[m]);
  if (xs.size() != c.runs.size())
    return std::nullopt;
  return median(xs);
}

std::string format_value(kind k, double x) {
  char buf[64];
  switch (k) {
    case kind::rate:
    case kind::bytes:
      return with_commas(static_cast<int64_t>(x + 0.5));
    case kind::seconds:
      std::snprintf(buf, sizeof(buf), "%.2f", x);
      return buf;
  }
  return "?";
}

std::string format_cell(const cell& c, const metric& m, size_t index,
                        int timeout_s) {
  if (!c.absent.empty())
    return c.absent;
  if (c.timed_out)
    return index == 0 ? "timeout (>" + std::to_string(timeout_s) + " s)" : "—";
  if (!c.failure.empty())
    return "failed (" + c.failure + ")";
  if (auto x = cell_median(c, index))
    return format_value(m.k, *x);
  return "—";
}

// Troupe relative to another variant, oriented so that above 1 means troupe
// is better: rates troupe/other, times and bytes other/troupe. A timeout
// gives a bound instead of a value.
struct ratio {
  enum class bound { none, exact, at_least, at_most };
  bound b = bound::none;
  double value = 0;
};

ratio make_ratio(const cell& troupe, const cell& other, const metric& m,
                 size_t index, int timeout_s) {
  auto t = cell_median(troupe, index);
  auto o = cell_median(other, index);
  if (t && o && *t > 0 && *o > 0)
    return {ratio::bound::exact, m.k == kind::rate ? *t / *o : *o / *t};
  if (m.k == kind::seconds && t && *t > 0 && other.timed_out)
    return {ratio::bound::at_least, timeout_s / *t};
  if (m.k == kind::seconds && o && troupe.timed_out)
    return {ratio::bound::at_most, *o / timeout_s};
  return {};
}

std::string format_ratio(const ratio& r) {
  char buf[64];
  switch (r.b) {
    case ratio::bound::none:
      return "—";
    case ratio::bound::exact:
      std::snprintf(buf, sizeof(buf), "%.2f", r.value);
      break;
    case ratio::bound::at_least:
      std::snprintf(buf, sizeof(buf), "> %.1f", r.value);
      break;
    case ratio::bound::at_most:
      std::snprintf(buf, sizeof(buf), "< %.2f", r.value);
      break;
  }
  return buf;
}

// -- the plot -----------------------------------------------------------------

struct plot_row {
  std::string label;
  ratio vs_caf;
  ratio vs_sharing;
};

std::string xml_escape(const std::string& x) {
  std::string result;
  for (auto c : x) {
    switch (c) {
      case '&':
        result += "&amp;";
        break;
      case '<':
        result += "&lt;";
        break;
      case '>':
        result += "&gt;";
        break;
      default:
        result += c;
    }
  }
  return result;
}

// Writes a horizontal bar chart of the ratios to `path` (SVG, no
// dependencies). Bars end at 3 at most; the label tells the value.
bool write_svg(const std::string& path, const std::vector<plot_row>& rows,
               const std::string& title) {
  std::ofstream out{path};
  if (!out)
    return false;
  constexpr int left = 300;
  constexpr int plot_w = 440;
  constexpr int row_h = 40;
  constexpr int top = 50;
  constexpr double x_max = 3.0;
  int height = top + static_cast<int>(rows.size()) * row_h + 50;
  int width = left + plot_w + 170;
  auto x_of = [&](double r) {
    return left + static_cast<int>(std::min(r, x_max) / x_max * plot_w);
  };
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width
      << "\" height=\"" << height << "\" font-family=\"sans-serif\" "
      << "font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"10\" y=\"20\" font-size=\"14\">" << xml_escape(title)
      << "</text>\n"
      << "<text x=\"10\" y=\"38\" fill=\"#555\">troupe relative to raw "
         "CAF (above 1 = troupe better); goal 0.95</text>\n";
  for (double tick : {0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0}) {
    auto x = x_of(tick);
    out << "<line x1=\"" << x << "\" y1=\"" << top << "\" x2=\"" << x
        << "\" y2=\"" << height - 40 << "\" stroke=\"#ddd\"/>\n"
        << "<text x=\"" << x << "\" y=\"" << height - 26
        << "\" text-anchor=\"middle\">" << tick << "</text>\n";
  }
  auto goal = x_of(0.95);
  out << "<line x1=\"" << goal << "\" y1=\"" << top << "\" x2=\"" << goal
      << "\" y2=\"" << height - 40
      << "\" stroke=\"#c00\" stroke-dasharray=\"4 3\"/>\n";
  auto bar = [&](const ratio& r, int y, const char* color, const char* name) {
    if (r.b == ratio::bound::none) {
      out << "<text x=\"" << left + 4 << "\" y=\"" << y + 11 << "\">" << name
          << ": —</text>\n";
      return;
    }
    out << "<rect x=\"" << left << "\" y=\"" << y << "\" width=\""
        << x_of(r.value) - left << "\" height=\"14\" fill=\"" << color
        << "\"/>\n"
        << "<text x=\"" << x_of(r.value) + 4 << "\" y=\"" << y + 11 << "\">"
        << name << " " << xml_escape(format_ratio(r)) << "</text>\n";
  };
  int y = top + 6;
  for (auto& row : rows) {
    out << "<text x=\"" << left - 8 << "\" y=\"" << y + 20
        << "\" text-anchor=\"end\">" << xml_escape(row.label) << "</text>\n";
    bar(row.vs_caf, y + 2, "#4a7ab5", "vs caf");
    bar(row.vs_sharing, y + 18, "#e0a030", "vs caf-sharing");
    y += row_h;
  }
  out << "</svg>\n";
  return static_cast<bool>(out);
}

// -- the parent ---------------------------------------------------------------

void print_usage(std::ostream& out) {
  out << "Usage: troupe_bench [OPTIONS]\n"
         "Runs the benchmarks for raw CAF ('stealing' and 'sharing' "
         "scheduler),\ntroupe and the seed's Python programs; prints a "
         "Markdown table of medians.\n\n"
         "Options:\n"
         "  --runs <int>      runs per workload and variant (default: 5; 1 "
         "with --quick)\n"
         "  --quick           small counts: a smoke test, not a measurement\n"
         "  --timeout <int>   seconds before a run is killed and reported "
         "as a timeout\n"
         "                    (default: 60)\n"
         "  --actors <int>    actors per spawn workload (default: "
         "1000000; a tenth\n"
         "                    of it for spawn-actor-small)\n"
         "  --only <list>     comma-separated workloads to run, by prefix: "
         "ping-pong,\n"
         "                    fan-in, fan-in-2, fan-in-8, spawn, spawn-main, "
         "spawn-actor,\n"
         "                    spawn-actor-small, stream, stream-reply\n"
         "  --no-python       skip the Python reference\n"
         "  --svg <file>      also plot the ratios as an SVG bar chart\n"
         "  -h, --help        print this text and exit\n\n"
         "Internal: troupe_bench --one WORKLOAD VARIANT N K runs one "
         "measurement\nand prints 'result VALUE [BYTES_PER_ACTOR]'.\n";
}

std::optional<int64_t> to_int(const std::string& x) {
  try {
    size_t used = 0;
    auto result = std::stoll(x, &used);
    if (used != x.size())
      return std::nullopt;
    return result;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// Returns the exit code if the program should stop (help, bad option).
std::optional<int> parse_options(int argc, char** argv, options& opt) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_value = false;
    if (auto eq = arg.find('=');
        arg.compare(0, 2, "--") == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.erase(eq);
      has_value = true;
    }
    auto take_value = [&]() -> bool {
      if (has_value)
        return true;
      if (i + 1 >= argc)
        return false;
      value = argv[++i];
      return true;
    };
    auto bad = [&](const std::string& why) {
      std::cerr << "troupe_bench: " << why << " (see --help)\n";
      return 2;
    };
    if (arg == "-h" || arg == "--help") {
      print_usage(std::cout);
      return 0;
    }
    if (arg == "--quick" || arg == "--no-python") {
      if (has_value)
        return bad("option '" + arg + "' is a flag and takes no value");
      if (arg == "--quick")
        opt.quick = true;
      else
        opt.python = false;
      continue;
    }
    if (arg == "--runs" || arg == "--timeout" || arg == "--actors") {
      if (!take_value())
        return bad("option '" + arg + "' needs a value");
      auto x = to_int(value);
      if (!x || *x < 1 || *x > 100'000'000)
        return bad("invalid value '" + value + "' for option '" + arg
                   + "' (expected a positive integer)");
      if (arg == "--runs") {
        opt.runs = static_cast<int>(*x);
        opt.runs_given = true;
      } else if (arg == "--timeout") {
        opt.timeout_s = static_cast<int>(*x);
      } else {
        opt.actors = *x;
      }
      continue;
    }
    if (arg == "--svg") {
      if (!take_value() || value.empty())
        return bad("option '--svg' needs a file name");
      opt.svg = value;
      continue;
    }
    if (arg == "--only") {
      if (!take_value())
        return bad("option '--only' needs a value");
      std::istringstream in{value};
      std::string x;
      while (std::getline(in, x, ','))
        if (!x.empty())
          opt.only.push_back(x);
      continue;
    }
    return bad("unknown option '" + arg + "'");
  }
  if (opt.quick && !opt.runs_given)
    opt.runs = 1;
  return std::nullopt;
}

int run_parent(int argc, char** argv) {
  options opt;
  if (auto code = parse_options(argc, argv, opt))
    return *code;
  auto benches = make_benches(opt);
  if (benches.empty()) {
    std::cerr << "troupe_bench: --only selects no workload (see --help)\n";
    return 2;
  }
  auto exe = self_exe();
  std::string py_script = TROUPE_BENCH_PYTHON_SCRIPT;
  std::string py_absent;
  std::string py_version;
  if (!opt.python)
    py_absent = "skipped";
  else if (!in_path("python3"))
    py_absent = "n/a (no python3)";
  else if (py_script.empty() || access(py_script.c_str(), R_OK) != 0)
    py_absent = "n/a (no reference.py)";
  if (py_absent.empty()) {
    auto v = run_child({"python3", "--version"}, std::chrono::seconds(10));
    py_version = v.out.substr(0, v.out.find('\n'));
  }
  auto timeout = std::chrono::seconds(opt.timeout_s);
  auto load_before = load_average();
  auto started = now_utc();
  // cells[b][v]
  std::vector<std::vector<cell>> cells(benches.size(),
                                       std::vector<cell>(num_variants));
  for (size_t b = 0; b < benches.size(); ++b) {
    if (benches[b].python_n == 0)
      cells[b][python_col].absent = "—";
    else if (!py_absent.empty())
      cells[b][python_col].absent = py_absent;
    if (!benches[b].ring)
      cells[b][ring_col].absent = "—";
  }
  // Variants take turns within each run, so that a burst of load from
  // elsewhere does not hit one variant only.
  for (size_t b = 0; b < benches.size(); ++b) {
    auto& def = benches[b];
    for (int r = 0; r < opt.runs; ++r) {
      bool ran = false;
      for (size_t v = 0; v < num_variants; ++v) {
        auto& c = cells[b][v];
        if (!c.absent.empty() || c.timed_out || !c.failure.empty())
          continue;
        if (!ran)
          std::cerr << def.id << " run " << (r + 1) << "/" << opt.runs << ":";
        ran = true;
        std::vector<std::string> args;
        if (v == python_col)
          args = {"python3", py_script, def.workload,
                  std::to_string(def.python_n), std::to_string(def.k)};
        else
          args = {exe,
                  "--one",
                  def.workload,
                  variants[v],
                  std::to_string(def.n),
                  std::to_string(def.k)};
        auto out = run_child(args, timeout);
        std::cerr << " " << variants[v] << " ";
        if (out.st == status::timeout) {
          c.timed_out = true; // the other runs would time out as well
          std::cerr << "timeout";
          continue;
        }
        auto xs = parse_result(out.out);
        if (out.st != status::ok || !xs || xs->size() < def.metrics.size()) {
          c.failure = out.detail.empty() ? "no result" : out.detail;
          std::cerr << "failed (" << c.failure << ")";
          continue;
        }
        c.runs.push_back(*xs);
        std::cerr << format_value(def.metrics[0].k, xs->front());
      }
      if (ran)
        std::cerr << std::endl;
    }
  }
  auto load_after = load_average();
  // -- the report ------------------------------------------------------------
  utsname un{};
  uname(&un);
  auto& out = std::cout;
  out << "## troupe benchmarks\n\n"
      << "- Date: " << started << "\n"
      << "- Machine: " << std::thread::hardware_concurrency() << " CPUs ("
      << first_field("/proc/cpuinfo", "model name") << "), " << mem_total()
      << " RAM, " << un.sysname << " " << un.release << "\n"
      << "- Build: " << TROUPE_BENCH_BUILD_TYPE << ", " << compiler()
      << ", CAF " << CAF_VERSION / 10000 << "." << CAF_VERSION / 100 % 100
      << "." << CAF_VERSION % 100
      << (py_version.empty() ? "" : ", " + py_version) << "\n"
      << "- Method: median of " << opt.runs << " run"
      << (opt.runs == 1 ? "" : "s") << " per cell"
      << (opt.quick ? " (--quick: small counts, a smoke test only)" : "")
      << "; every run is a fresh process; a run still going after "
      << opt.timeout_s << " s is killed and reported as a timeout\n"
      << "- Load average: " << load_before << " before, " << load_after
      << " after\n\n";
  std::vector<plot_row> plot;
  out << "| workload | unit | caf | caf-sharing | troupe | python | ring "
         "| troupe/caf | troupe/caf-sharing |\n"
      << "|---|---|--:|--:|--:|--:|--:|--:|--:|\n";
  for (size_t b = 0; b < benches.size(); ++b) {
    auto& def = benches[b];
    for (size_t m = 0; m < def.metrics.size(); ++m) {
      auto& met = def.metrics[m];
      out << "| " << met.label << " | " << met.unit;
      for (size_t v = 0; v < num_variants; ++v)
        out << " | " << format_cell(cells[b][v], met, m, opt.timeout_s);
      plot_row row{met.label,
                   make_ratio(cells[b][troupe_col], cells[b][caf_col], met, m,
                              opt.timeout_s),
                   make_ratio(cells[b][troupe_col], cells[b][sharing_col], met,
                              m, opt.timeout_s)};
      out << " | " << format_ratio(row.vs_caf) << " | "
          << format_ratio(row.vs_sharing) << " |\n";
      plot.push_back(std::move(row));
    }
  }
  out << "\nVariants: `caf` = raw CAF with its defaults (`scheduler.policy` "
         "'stealing'); `caf-sharing` = raw CAF with 'sharing'; `troupe` = "
         "`troupe::config` defaults + `troupe::node`, top-level actors via "
         "`node::spawn`; `python` = the seed's programs (bench/python/"
         "reference.py); `ring` = a single-producer single-consumer lock-free "
         "ring between two threads, no actors (stream only). Ratios are "
         "troupe relative to raw CAF, oriented so "
         "that above 1 means troupe is better: troupe ÷ caf for rates, "
         "caf ÷ troupe for seconds and bytes; \"> x\" is a lower bound from "
         "a timeout.\n\nAgainst the references (troupe ÷ python, "
         "troupe ÷ ring; rates, above 1 = troupe faster):\n\n";
  for (size_t b = 0; b < benches.size(); ++b) {
    auto& def = benches[b];
    for (size_t m = 0; m < def.metrics.size(); ++m) {
      if (def.metrics[m].k != kind::rate)
        continue;
      for (auto ref : {python_col, ring_col}) {
        auto r = make_ratio(cells[b][troupe_col], cells[b][ref], def.metrics[m],
                            m, opt.timeout_s);
        if (r.b == ratio::bound::exact)
          out << "- " << def.metrics[m].label << ": troupe/" << variants[ref]
              << " " << format_ratio(r) << "\n";
      }
    }
  }
  out << "\nOne run:\n\n";
  for (auto& def : benches)
    out << "- " << def.id << ": " << def.what << "\n";
  out << "\nAll runs (medians above are taken from these):\n\n";
  for (size_t b = 0; b < benches.size(); ++b) {
    for (size_t v = 0; v < num_variants; ++v) {
      auto& c = cells[b][v];
      if (!c.absent.empty())
        continue;
      out << "- " << benches[b].id << " / " << variants[v] << ":";
      for (auto& r : c.runs) {
        out << " " << format_value(benches[b].metrics[0].k, r[0]);
        if (r.size() > 1 && benches[b].metrics.size() > 1)
          out << " (" << format_value(benches[b].metrics[1].k, r[1]) << " B)";
      }
      if (c.timed_out)
        out << " timeout";
      if (!c.failure.empty())
        out << " failed (" << c.failure << ")";
      out << "\n";
    }
  }
  if (!opt.svg.empty()) {
    if (!write_svg(opt.svg, plot, "troupe benchmarks, " + started)) {
      std::cerr << "troupe_bench: cannot write '" << opt.svg << "'\n";
      return 1;
    }
    std::cerr << "plot written to " << opt.svg << "\n";
  }
  return 0;
}

// -- the child ----------------------------------------------------------------

int run_one(int argc, char** argv) {
  if (argc != 6) {
    std::cerr << "usage: troupe_bench --one WORKLOAD VARIANT N K\n";
    return 2;
  }
  job j;
  j.workload = argv[2];
  std::string variant = argv[3];
  auto n = to_int(argv[4]);
  auto k = to_int(argv[5]);
  if (!n || *n < 1 || !k || *k < 0 || (j.workload == "fan-in" && *k < 1)) {
    std::cerr << "troupe_bench --one: bad N or K\n";
    return 2;
  }
  j.n = *n;
  j.k = static_cast<int32_t>(*k);
  try {
    result r;
    if (variant == "caf")
      r = run_caf(j, false);
    else if (variant == "caf-sharing")
      r = run_caf(j, true);
    else if (variant == "troupe")
      r = run_troupe(j);
    else if (variant == "ring")
      r = run_ring(j);
    else
      throw std::invalid_argument("unknown variant '" + variant + "'");
    std::printf("result %.17g %.17g\n", r.value, r.bytes_per_actor);
    std::fflush(stdout);
  } catch (const std::exception& e) {
    std::cerr << "troupe_bench --one: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

} // namespace

} // namespace troupe::bench

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--one") == 0)
    return troupe::bench::run_one(argc, argv);
  return troupe::bench::run_parent(argc, argv);
}
