#pragma once

// Private: the byte buffer in which a subscription keeps the messages that
// wait for its callback (see subscription.hpp).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "troupe/bus/message.hpp"

namespace troupe::bus::detail {

// Messages stored back to back in one byte buffer, oldest first: a header
// with the sizes, then subject, reply subject and payload. Copying a message
// in and out is a few `memcpy`s into memory that is read and written in
// order, which is what lets one core hand millions of messages per second
// to another; the buffer is reused, so nothing is allocated once it has
// grown to the backlog. Not thread-safe.
class record_buffer {
public:
  record_buffer() = default;
  record_buffer(const record_buffer&) = delete;
  record_buffer& operator=(const record_buffer&) = delete;

  size_t count() const noexcept {
    return count_;
  }

  bool empty() const noexcept {
    return count_ == 0;
  }

  void push_back(const bus_message_view& m) {
    header h{static_cast<uint32_t>(m.subject.size()),
             static_cast<uint32_t>(m.reply_to.size()),
             static_cast<uint32_t>(m.payload.size()), m.type};
    auto n = sizeof(header) + m.subject.size() + m.reply_to.size()
             + m.payload.size();
    if (cap_ - end_ < n)
      grow(n);
    auto* p = data_.get() + end_;
    std::memcpy(p, &h, sizeof(header));
    p = put(p + sizeof(header), m.subject);
    p = put(p, m.reply_to);
    put(p, m.payload);
    end_ += n;
    ++count_;
  }

  /// Drops the oldest message. @pre `!empty()`
  void pop_front() noexcept {
    begin_ += record_size(begin_);
    if (--count_ == 0) {
      begin_ = 0;
      end_ = 0;
    }
  }

  /// Copies the message at offset `pos` into `out` (reusing its strings'
  /// buffers) and returns the offset of the next one.
  size_t read(size_t pos, bus_message& out) const {
    header h;
    std::memcpy(&h, data_.get() + pos, sizeof(header));
    auto* p = data_.get() + pos + sizeof(header);
    copy_to(out.subject, p, h.subject);
    p += h.subject;
    copy_to(out.reply_to, p, h.reply_to);
    p += h.reply_to;
    copy_to(out.payload, p, h.payload);
    out.type = h.type;
    return pos + sizeof(header) + h.subject + h.reply_to + h.payload;
  }

  /// Returns the offset of the oldest message.
  size_t begin() const noexcept {
    return begin_;
  }

  /// Forgets every message; keeps the memory unless it exceeds `keep`.
  void clear(size_t keep) noexcept {
    begin_ = 0;
    end_ = 0;
    count_ = 0;
    if (cap_ > keep) {
      data_.reset();
      cap_ = 0;
    }
  }

  void swap(record_buffer& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(cap_, other.cap_);
    std::swap(begin_, other.begin_);
    std::swap(end_, other.end_);
    std::swap(count_, other.count_);
  }

private:
  struct header {
    uint32_t subject;
    uint32_t reply_to;
    uint32_t payload;
    uint64_t type;
  };

  // Copies `x` to `p`; returns the end. (An empty view may have no data:
  // `memcpy` must not see that null pointer.)
  static char* put(char* p, std::string_view x) noexcept {
    if (!x.empty())
      std::memcpy(p, x.data(), x.size());
    return p + x.size();
  }

  // Like `out.assign(p, n)`, but cheap when the size stays the same (a
  // subject repeats, a reply subject stays empty).
  static void copy_to(std::string& out, const char* p, size_t n) {
    if (out.size() != n)
      out.resize(n);
    if (n > 0)
      std::memcpy(out.data(), p, n);
  }

  size_t record_size(size_t pos) const noexcept {
    header h;
    std::memcpy(&h, data_.get() + pos, sizeof(header));
    return sizeof(header) + h.subject + h.reply_to + h.payload;
  }

  // Makes room for `n` more bytes: moves the live records to the front, in
  // a larger block if need be.
  void grow(size_t n) {
    auto live = end_ - begin_;
    if (live + n <= cap_ && begin_ >= live) {
      std::memmove(data_.get(), data_.get() + begin_, live);
    } else {
      auto cap = std::max({size_t{4096}, 2 * cap_, live + n});
      std::unique_ptr<char[]> next{new char[cap]};
      if (live > 0)
        std::memcpy(next.get(), data_.get() + begin_, live);
      data_ = std::move(next);
      cap_ = cap;
    }
    begin_ = 0;
    end_ = live;
  }

  std::unique_ptr<char[]> data_;
  size_t cap_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
  size_t count_ = 0;
};

} // namespace troupe::bus::detail
