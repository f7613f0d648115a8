#pragma once

namespace troupe::actors {

struct counter_state;

} // namespace troupe::actors
