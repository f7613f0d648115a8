#pragma once

// Private: the wire format of the batches that the routers of a bus cluster
// send each other (`(bus_batch, bytes)`, see cluster_router.hpp): encoding
// a message into a batch, and decoding the records of a batch. The decoder
// reads bytes that came from a socket, from a peer that may be broken or
// speak another version: it checks every size against what is left and
// never reads past the end. Defined here, inline: every message crosses
// them, and out of line they cost each message about 85 more instructions
// (callgrind, 16-byte messages between two processes).
//
// A batch is a sequence of records, each:
//   u32 record size (after this field), u8 hops, u8 flags (1: plain
//   subscribers), u16 groups, u64 type, u32 subject size, u32 reply size,
//   u32 payload size, then the subject, reply, payload, and per group a u16
//   size and the name. Integers are little-endian.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "troupe/bus/message.hpp"

namespace troupe::bus::detail {

/// The version of this format and of the routers' messages; peers exchange
/// it in their hello and refuse a link between different versions.
constexpr uint32_t protocol_version = 2;

/// One decoded record; views into the batch.
struct wire_record {
  bus_message_view msg;
  /// Links the message has crossed before this batch's.
  uint8_t hops = 0;
  /// Whether plain subscribers get it.
  bool plain = false;
  /// The queue groups the receiver must serve.
  std::vector<std::string_view> groups;
};

namespace wire {

// The fixed part of a record, size field included.
constexpr size_t record_header = 4 + 1 + 1 + 2 + 8 + 4 + 4 + 4;

constexpr uint8_t flag_plain = 1;

template <class T>
inline void put(std::string& out, T x) {
  char bytes[sizeof(T)];
  for (size_t i = 0; i < sizeof(T); ++i)
    bytes[i] = static_cast<char>((static_cast<uint64_t>(x) >> (8 * i)) & 0xff);
  out.append(bytes, sizeof(T));
}

template <class T>
inline T get(const char* p) {
  uint64_t x = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    x |= uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return static_cast<T>(x);
}

} // namespace wire

/// Appends to `out` the record of `m` with `hops`, `plain` and `groups`.
/// @pre every size fits its field (a payload below 4 GiB, at most 65535
/// groups of at most 65535 bytes each).
inline void encode_record(std::string& out, const bus_message_view& m,
                          uint8_t hops, bool plain,
                          const std::vector<std::string_view>& groups) {
  size_t size = wire::record_header - 4 + m.subject.size() + m.reply_to.size()
                + m.payload.size();
  for (auto& g : groups)
    size += 2 + g.size();
  wire::put<uint32_t>(out, static_cast<uint32_t>(size));
  wire::put<uint8_t>(out, hops);
  wire::put<uint8_t>(out, plain ? wire::flag_plain : 0);
  wire::put<uint16_t>(out, static_cast<uint16_t>(groups.size()));
  wire::put<uint64_t>(out, m.type);
  wire::put<uint32_t>(out, static_cast<uint32_t>(m.subject.size()));
  wire::put<uint32_t>(out, static_cast<uint32_t>(m.reply_to.size()));
  wire::put<uint32_t>(out, static_cast<uint32_t>(m.payload.size()));
  out.append(m.subject);
  out.append(m.reply_to);
  out.append(m.payload);
  for (auto& g : groups) {
    wire::put<uint16_t>(out, static_cast<uint16_t>(g.size()));
    out.append(g);
  }
}

/// Decodes the record at `data[pos]` into `out` and advances `pos` past it.
/// Returns false, leaving `pos` as it was, if the bytes there are not a
/// well-formed record (too short, sizes that do not add up).
[[nodiscard]] inline bool decode_record(std::string_view data, size_t& pos,
                                        wire_record& out) {
  if (data.size() - pos < wire::record_header)
    return false;
  const char* p = data.data() + pos;
  auto size = wire::get<uint32_t>(p);
  if (size < wire::record_header - 4 || data.size() - pos - 4 < size)
    return false;
  out.hops = wire::get<uint8_t>(p + 4);
  out.plain = (wire::get<uint8_t>(p + 5) & wire::flag_plain) != 0;
  auto ngroups = wire::get<uint16_t>(p + 6);
  out.msg.type = wire::get<uint64_t>(p + 8);
  uint64_t ls = wire::get<uint32_t>(p + 16);
  uint64_t lr = wire::get<uint32_t>(p + 20);
  uint64_t lp = wire::get<uint32_t>(p + 24);
  uint64_t left = size - (wire::record_header - 4);
  if (ls + lr + lp > left)
    return false;
  const char* q = p + wire::record_header;
  out.msg.subject = {q, ls};
  out.msg.reply_to = {q + ls, lr};
  out.msg.payload = {q + ls + lr, lp};
  q += ls + lr + lp;
  left -= ls + lr + lp;
  out.groups.clear();
  for (uint16_t i = 0; i < ngroups; ++i) {
    if (left < 2)
      return false;
    auto lg = wire::get<uint16_t>(q);
    if (left - 2 < lg)
      return false;
    out.groups.emplace_back(q + 2, lg);
    q += 2 + lg;
    left -= 2 + lg;
  }
  if (left != 0)
    return false;
  pos += 4 + size;
  return true;
}

} // namespace troupe::bus::detail
