// A small persistent thread pool for the CPU kernels. The calling thread takes part, so
// num_threads = 1 spawns nothing. Concurrent callers (several libuv workers) are serialized
// so the process never runs more kernel threads than asked for.
//
// Idle workers spin for a short while (kSpinMicros) before they block: a decode step issues
// many short kernel calls back to back (project_append, mla_decode, the projections of every
// layer), and waking a blocked thread costs 15-50 us on these machines, a large share of a
// 0.1-0.3 ms call.
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

  static constexpr int64_t kSpinMicros = 200;

 private:
  void worker_loop(int32_t worker);
  // Claims and runs tasks of generation gen until none is left.
  void drain(uint32_t gen, int32_t worker);

  int32_t num_threads_;
  std::vector<std::thread> threads_;
  std::mutex call_mutex_;  // one run() at a time

  // The job: written by run() before the ticket announces its generation (release), read by
  // workers after they see it (acquire). Atomics because a worker late from the previous
  // generation may read them while run() writes; it then fails to claim a task (the ticket's
  // generation no longer matches) and never uses what it read.
  std::atomic<TaskFn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<int64_t> num_tasks_{0};
  // (generation << 32) | next task index: a task is claimed by a compare-exchange that also
  // checks the generation, so no worker can take a task of a job it did not read.
  std::atomic<uint64_t> ticket_{0};
  std::atomic<int64_t> done_{0};  // tasks of the current job finished

  std::mutex sleep_mutex_;
  std::condition_variable wake_;
  std::atomic<int32_t> sleepers_{0};
  std::atomic<bool> stopping_{false};
};

}  // namespace lkv::cpu

#endif  // LATENTKV_CPU_THREAD_POOL_H_
