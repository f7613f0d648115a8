#pragma once

// The types that the targets queue_wire and typed_payload decode, listed in the
// order of the selector byte that starts their inputs; shared with the corpus
// generator (make_corpus.cpp), which writes that byte.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/meta/type_name.hpp>

#include "troupe/queue/protocol.hpp"

namespace troupe::fuzz {

/// What a typical application payload looks like: a record of strings, a
/// list and numbers, with an `inspect` overload as users write it.
struct order {
  std::string id;
  std::vector<std::string> items;
  double total = 0;
  uint16_t quantity = 0;
  bool paid = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, order& x) {
  return f(caf::meta::type_name("troupe.fuzz.order"), x.id, x.items, x.total,
           x.quantity, x.paid);
}

/// The queue's wire (target queue_wire): the three message structs, and the
/// batches that `(tq_tasks_atom, ...)` and `(tq_results_atom, ...)` carry.
using queue_wire_types
  = std::tuple<queue::worker_hello, queue::task_msg, queue::result_msg,
               std::vector<queue::task_msg>, std::vector<queue::result_msg>>;

/// Payloads (target typed_payload): what `troupe::from_bytes` decodes for the
/// bus's `get<T>()` and a queue's tasks and results; the tools' task and result
/// types (`int64_t`, `std::string`) first.
using payload_types
  = std::tuple<int64_t, std::string, double, std::vector<char>,
               std::vector<int32_t>, std::vector<std::string>,
               std::map<std::string, int64_t>, order>;

/// Returns the selector byte of `T` in `Types`.
template <class T, class Types, size_t I = 0>
constexpr uint8_t selector_of() {
  static_assert(I < std::tuple_size_v<Types>, "T is not in Types");
  if constexpr (std::is_same_v<T, std::tuple_element_t<I, Types>>)
    return static_cast<uint8_t>(I);
  else
    return selector_of<T, Types, I + 1>();
}

namespace detail {

template <class Types, class F, size_t... Is>
void call_at(size_t index, F& f, std::index_sequence<Is...>) {
  static_cast<void>(
    ((index == Is ? (f(std::tuple_element_t<Is, Types>{}), true) : false)
     || ...));
}

} // namespace detail

/// Calls `f(T{})` for the type `T` of `Types` that `selector` picks (modulo
/// the number of types, so that every byte picks one).
template <class Types, class F>
void with_selected(uint8_t selector, F f) {
  constexpr size_t n = std::tuple_size_v<Types>;
  detail::call_at<Types>(selector % n, f, std::make_index_sequence<n>{});
}

} // namespace troupe::fuzz
