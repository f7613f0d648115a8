// The wire format of bus batches (see wire.hpp).

#include "wire.hpp"

namespace troupe::bus::detail {

namespace {

// The fixed part of a record, size field included.
constexpr size_t record_header = 4 + 1 + 1 + 2 + 8 + 4 + 4 + 4;

constexpr uint8_t flag_plain = 1;

template <class T>
void put(std::string& out, T x) {
  char bytes[sizeof(T)];
  for (size_t i = 0; i < sizeof(T); ++i)
    bytes[i] = static_cast<char>((static_cast<uint64_t>(x) >> (8 * i)) & 0xff);
  out.append(bytes, sizeof(T));
}

template <class T>
T get(const char* p) {
  uint64_t x = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    x |= uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return static_cast<T>(x);
}

} // namespace

void encode_record(std::string& out, const bus_message_view& m, uint8_t hops,
                   bool plain, const std::vector<std::string_view>& groups) {
  size_t size = record_header - 4 + m.subject.size() + m.reply_to.size()
                + m.payload.size();
  for (auto& g : groups)
    size += 2 + g.size();
  put<uint32_t>(out, static_cast<uint32_t>(size));
  put<uint8_t>(out, hops);
  put<uint8_t>(out, plain ? flag_plain : 0);
  put<uint16_t>(out, static_cast<uint16_t>(groups.size()));
  put<uint64_t>(out, m.type);
  put<uint32_t>(out, static_cast<uint32_t>(m.subject.size()));
  put<uint32_t>(out, static_cast<uint32_t>(m.reply_to.size()));
  put<uint32_t>(out, static_cast<uint32_t>(m.payload.size()));
  out.append(m.subject);
  out.append(m.reply_to);
  out.append(m.payload);
  for (auto& g : groups) {
    put<uint16_t>(out, static_cast<uint16_t>(g.size()));
    out.append(g);
  }
}

bool decode_record(std::string_view data, size_t& pos, wire_record& out) {
  if (data.size() - pos < record_header)
    return false;
  const char* p = data.data() + pos;
  auto size = get<uint32_t>(p);
  if (size < record_header - 4 || data.size() - pos - 4 < size)
    return false;
  out.hops = get<uint8_t>(p + 4);
  out.plain = (get<uint8_t>(p + 5) & flag_plain) != 0;
  auto ngroups = get<uint16_t>(p + 6);
  out.msg.type = get<uint64_t>(p + 8);
  uint64_t ls = get<uint32_t>(p + 16);
  uint64_t lr = get<uint32_t>(p + 20);
  uint64_t lp = get<uint32_t>(p + 24);
  uint64_t left = size - (record_header - 4);
  if (ls + lr + lp > left)
    return false;
  const char* q = p + record_header;
  out.msg.subject = {q, ls};
  out.msg.reply_to = {q + ls, lr};
  out.msg.payload = {q + ls + lr, lp};
  q += ls + lr + lp;
  left -= ls + lr + lp;
  out.groups.clear();
  for (uint16_t i = 0; i < ngroups; ++i) {
    if (left < 2)
      return false;
    auto lg = get<uint16_t>(q);
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
