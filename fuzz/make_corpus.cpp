// Writes the seed corpus of each fuzz target: a few small valid inputs made
// by the real encoders. Run once by hand, and its output committed, when an
// encoder or a type list in types.hpp changes:
//
//   cmake --build build/fuzz --target make_corpus
//   build/fuzz/make_corpus fuzz/corpus
//
// Writes <dir>/bus_batch/*, <dir>/queue_wire/* and <dir>/typed_payload/*.

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <caf/binary_serializer.hpp>

#include "troupe/runtime/payload.hpp"

#include "types.hpp"

// Private to troupe_bus, so included by path (see bus_batch.cpp).
#include "../actors/bus/src/wire.hpp"

namespace {

namespace fs = std::filesystem;
using namespace troupe;

void write(const fs::path& file, const std::string& bytes) {
  std::ofstream out{file, std::ios::binary};
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out)
    throw std::runtime_error("cannot write " + file.string());
}

// A selector byte, then `x` as CAF's binary serializer writes it.
template <class T>
std::string with_selector(uint8_t selector, const T& x) {
  auto bytes = to_bytes(x);
  return std::string(1, static_cast<char>(selector))
         + std::string{bytes.begin(), bytes.end()};
}

template <class T>
void write_queue_wire(const fs::path& dir, const std::string& name,
                      const T& x) {
  write(dir / name,
        with_selector(fuzz::selector_of<T, fuzz::queue_wire_types>(), x));
}

template <class T>
void write_typed_payload(const fs::path& dir, const std::string& name,
                         const T& x, bool exact) {
  auto selector = fuzz::selector_of<T, fuzz::payload_types>();
  write(dir / name, with_selector(exact ? selector | 0x80 : selector, x));
}

void seed_bus_batch(const fs::path& dir) {
  using bus::detail::encode_record;
  using groups = std::vector<std::string_view>;
  bus::bus_message_view event{"orders.eu.created", "", "order 17", 0};
  bus::bus_message_view request{"svc.echo", "_INBOX.3f9a.1", "ping", 0};
  auto tagged = to_bytes(int64_t{42});
  bus::bus_message_view typed{"ticks", "",
                              std::string_view{tagged.data(), tagged.size()},
                              type_tag<int64_t>()};
  std::string one;
  encode_record(one, event, 0, true, {});
  write(dir / "event", one);
  std::string req;
  encode_record(req, request, 1, true, {});
  write(dir / "request", req);
  std::string grouped;
  encode_record(grouped, typed, 2, false, groups{"workers", "audit"});
  write(dir / "queue_groups", grouped);
  std::string empty;
  encode_record(empty, {"", "", "", 0}, 0, false, {});
  write(dir / "empty_record", empty);
  write(dir / "three_records", one + req + grouped);
}

void seed_queue_wire(const fs::path& dir) {
  using namespace troupe::queue;
  worker_hello hello;
  hello.queue = "tasks";
  hello.task_type = "long";
  hello.result_type = "std::__cxx11::basic_string<char, "
                      "std::char_traits<char>, std::allocator<char> >";
  hello.node.name = "worker-1";
  hello.node.fingerprint = std::string(64, 'a');
  hello.node.types = {"troupe.node_info", "troupe.result_msg",
                      "troupe.task_msg", "troupe.worker_hello"};
  hello.prefetch = 1024;
  write_queue_wire(dir, "worker_hello", hello);
  task_msg task{7, 1, to_bytes(int64_t{42})};
  write_queue_wire(dir, "task_msg", task);
  result_msg done{7, 1, true, to_bytes(std::string{"1764"}), ""};
  write_queue_wire(dir, "result_msg", done);
  result_msg failed{8, 2, false, {}, "task threw: division by zero"};
  write_queue_wire(dir, "result_msg_failed", failed);
  std::vector<task_msg> tasks{task, {8, 2, to_bytes(int64_t{-1})}, {9, 1, {}}};
  write_queue_wire(dir, "tasks", tasks);
  std::vector<result_msg> results{done, failed};
  write_queue_wire(dir, "results", results);
}

void seed_typed_payload(const fs::path& dir) {
  write_typed_payload(dir, "int64", int64_t{42}, true);
  write_typed_payload(dir, "string", std::string{"hello world"}, false);
  write_typed_payload(dir, "double", 3.25, true);
  write_typed_payload(dir, "bytes", std::vector<char>{'\0', '\x7f', 'z'},
                      false);
  write_typed_payload(dir, "ints", std::vector<int32_t>{1, -2, 300000}, true);
  write_typed_payload(dir, "strings", std::vector<std::string>{"a", "", "bc"},
                      true);
  write_typed_payload(
    dir, "map", std::map<std::string, int64_t>{{"eu", 3}, {"us", -7}}, true);
  write_typed_payload(
    dir, "order", fuzz::order{"o-17", {"book", "pen"}, 12.5, 2, true}, true);
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_corpus DIR\n";
    return 2;
  }
  fs::path root{argv[1]};
  for (auto [name, fn] : {std::pair{"bus_batch", &seed_bus_batch},
                          std::pair{"queue_wire", &seed_queue_wire},
                          std::pair{"typed_payload", &seed_typed_payload}}) {
    fs::remove_all(root / name);
    fs::create_directories(root / name);
    fn(root / name);
  }
  return 0;
}
