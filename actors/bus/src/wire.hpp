#pragma once

// Private: the wire format of the batches that the routers of a bus cluster
// send each other (`(bus_batch, bytes)`, see cluster_router.hpp): encoding
// a message into a batch, and decoding the records of a batch. The decoder
// reads bytes that came from a socket, from a peer that may be broken or
// speak another version: it checks every size against what is left and
// never reads past the end.
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
constexpr uint32_t protocol_version = 1;

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

/// Appends to `out` the record of `m` with `hops`, `plain` and `groups`.
/// @pre every size fits its field (a payload below 4 GiB, at most 65535
/// groups of at most 65535 bytes each).
void encode_record(std::string& out, const bus_message_view& m, uint8_t hops,
                   bool plain, const std::vector<std::string_view>& groups);

/// Decodes the record at `data[pos]` into `out` and advances `pos` past it.
/// Returns false, leaving `pos` as it was, if the bytes there are not a
/// well-formed record (too short, sizes that do not add up).
[[nodiscard]] bool decode_record(std::string_view data, size_t& pos,
                                 wire_record& out);

} // namespace troupe::bus::detail
