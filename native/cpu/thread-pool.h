// A small persistent thread pool for the CPU kernels. The calling thread takes part, so
// num_threads = 1 spawns nothing. Concurrent callers (several libuv workers) are serialized
// so the process never runs more kernel threads than asked for.
#ifndef LATENTKV_CPU_THREAD_POOL_H_
#define LATENTKV_CPU_THREAD_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace lkv::cpu {

class ThreadPool {
 public:
  using TaskFn = void (*)(void* ctx, int64_t task, int32_t worker);

  explicit ThreadPool(int32_t num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int32_t size() const { return num_threads_; }

  // Runs fn(ctx, task, worker) for task in [0, num_tasks); worker is in [0, size()).
  void run(int64_t num_tasks, TaskFn fn, void* ctx);

  template <typename F>
  void for_each(int64_t num_tasks, F&& f) {
    run(num_tasks, [](void* c, int64_t t, int32_t w) { (*static_cast<F*>(c))(t, w); }, &f);
  }

 private:
  void worker_loop(int32_t worker);
  void drain(int32_t worker);

  int32_t num_threads_;
  std::vector<std::thread> threads_;
  std::mutex call_mutex_;  // one run() at a time
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  uint64_t generation_ = 0;
  bool stopping_ = false;
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t num_tasks_ = 0;
  std::atomic<int64_t> next_task_{0};
  int32_t active_workers_ = 0;
};

}  // namespace lkv::cpu

#endif  // LATENTKV_CPU_THREAD_POOL_H_
