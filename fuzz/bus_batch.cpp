// libFuzzer target: the bus batch codec. A bus router decodes the batches
// that the routers of other nodes send it (`take_batch` in
// actors/bus/src/cluster_router.cpp); this target decodes its input the same
// way, record after record until the end or the first malformed one, and
// checks each record that decodes:
// - encoding it again with `encode_record` gives the bytes it was decoded
//   from, but for the flags byte, of which the decoder reads bit 0 only;
// - those bytes decode to the same record.
// The input is a batch as it arrives, without a selector byte.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "check.hpp"

// Private to troupe_bus, so included by path: the codec is inline in it, and
// this target must test the very code the router runs.
#include "../actors/bus/src/wire.hpp"

namespace {

using troupe::bus::detail::decode_record;
using troupe::bus::detail::encode_record;
using troupe::bus::detail::wire_record;

// The offset of the flags byte in a record.
constexpr size_t flags_offset = 5;

bool same(const wire_record& x, const wire_record& y) {
  return x.msg.subject == y.msg.subject && x.msg.reply_to == y.msg.reply_to
         && x.msg.payload == y.msg.payload && x.msg.type == y.msg.type
         && x.hops == y.hops && x.plain == y.plain && x.groups == y.groups;
}

// Checks that the record `r`, decoded from `in`, encodes back into `in`.
void check_round_trip(const wire_record& r, std::string_view in) {
  std::string out;
  encode_record(out, r.msg, r.hops, r.plain, r.groups);
  TROUPE_FUZZ_CHECK(out.size() == in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (i == flags_offset)
      TROUPE_FUZZ_CHECK(static_cast<uint8_t>(out[i])
                        == (static_cast<uint8_t>(in[i])
                            & troupe::bus::detail::wire::flag_plain));
    else
      TROUPE_FUZZ_CHECK(out[i] == in[i]);
  }
  wire_record again;
  size_t pos = 0;
  TROUPE_FUZZ_CHECK(decode_record(out, pos, again));
  TROUPE_FUZZ_CHECK(pos == out.size());
  TROUPE_FUZZ_CHECK(same(r, again));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view batch{reinterpret_cast<const char*>(data), size};
  // One record for the whole batch, as the router reuses its thread_local
  // one: each decode must overwrite what the last one left.
  wire_record r;
  size_t pos = 0;
  while (pos < batch.size()) {
    auto start = pos;
    if (!decode_record(batch, pos, r)) {
      TROUPE_FUZZ_CHECK(pos == start); // a failure leaves `pos` as it was
      break;
    }
    TROUPE_FUZZ_CHECK(pos > start && pos <= batch.size());
    check_round_trip(r, batch.substr(start, pos - start));
  }
  return 0;
}
