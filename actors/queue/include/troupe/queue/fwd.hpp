#pragma once

#include <cstdint>

// Forward declarations of the task queue's public types.

namespace troupe::queue {

template <class Task, class Result>
class task_queue;
template <class Result>
struct task_result;
enum class errc : uint8_t;
enum class worker_event;
struct dead_letter;
struct queue_options;
struct queue_resume;
struct queue_stats;
struct result_msg;
struct task_msg;
struct worker_hello;
struct worker_options;

} // namespace troupe::queue
