#pragma once

#include <cstdint>
#include <string>

// Random identifiers, for names that must differ between processes and
// hosts without coordination (a bus's reply subjects, a cluster node's id).

namespace troupe {

/// Returns 64 random bits from `std::random_device`, never 0 (so that 0 may
/// mean "none"). Thread-safe. Not for secrets: the bits are unpredictable on
/// platforms whose `random_device` is, nothing more is promised.
uint64_t random_id();

/// Returns `x` as 16 lowercase hexadecimal digits, leading zeros included,
/// e.g. `"00000000000000ff"` for 255.
std::string to_hex(uint64_t x);

} // namespace troupe
