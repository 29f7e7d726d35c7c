#include "thread-pool.h"

#include <chrono>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define LKV_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define LKV_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define LKV_CPU_RELAX() ((void)0)
#endif

namespace lkv::cpu {

namespace {

uint32_t generation_of(uint64_t ticket) { return static_cast<uint32_t>(ticket >> 32); }

// Task index of a ticket whose job is still being written: nothing can be claimed from it.
constexpr uint64_t kClosed = 0xffffffffu;
bool is_open(uint64_t ticket) { return (ticket & 0xffffffffu) != kClosed; }

// Calls done() between pauses until it returns true or kSpinMicros have passed; true if done.
template <typename Done>
bool spin_until(Done done) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      LKV_CPU_RELAX();
    }
    if (std::chrono::steady_clock::now() - start > std::chrono::microseconds(ThreadPool::kSpinMicros)) return false;
  }
}

}  // namespace

ThreadPool::ThreadPool(int32_t num_threads) : num_threads_(num_threads < 1 ? 1 : num_threads) {
  threads_.reserve(static_cast<size_t>(num_threads_ - 1));
  for (int32_t w = 1; w < num_threads_; ++w) threads_.emplace_back([this, w] { worker_loop(w); });
}

ThreadPool::~ThreadPool() {
  stopping_.store(true);
  {
    std::lock_guard<std::mutex> lock(sleep_mutex_);
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::drain(uint32_t gen, int32_t worker) {
  // Acquire loads: if run() has already closed this generation's ticket and written the next
  // job, reading any of that makes the close visible, so the claim below fails and the mixed
  // snapshot is never used. A successful claim means the job read is this generation's.
  const TaskFn fn = fn_.load(std::memory_order_acquire);
  void* const ctx = ctx_.load(std::memory_order_acquire);
  const uint64_t n = static_cast<uint64_t>(num_tasks_.load(std::memory_order_acquire));
  uint64_t t = ticket_.load(std::memory_order_acquire);
  while (generation_of(t) == gen && (t & 0xffffffffu) < n) {
    if (!ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    fn(ctx, static_cast<int64_t>(t & 0xffffffffu), worker);
    done_.fetch_add(1, std::memory_order_release);
    t = ticket_.load(std::memory_order_acquire);
  }
}

void ThreadPool::run(int64_t num_tasks, TaskFn fn, void* ctx) {
  if (num_tasks <= 0) return;
  if (num_threads_ == 1 || num_tasks == 1) {
    for (int64_t t = 0; t < num_tasks; ++t) fn(ctx, t, 0);
    return;
  }
  constexpr int64_t kMaxTasks = 0x7fffffff;  // the ticket holds a 32-bit task index
  if (num_tasks > kMaxTasks) {
    struct Offset {
      TaskFn fn;
      void* ctx;
      int64_t base;
    };
    for (int64_t base = 0; base < num_tasks; base += kMaxTasks) {
      Offset o{fn, ctx, base};
      const int64_t n = num_tasks - base < kMaxTasks ? num_tasks - base : kMaxTasks;
      run(n, [](void* c, int64_t t, int32_t w) {
        const Offset& off = *static_cast<const Offset*>(c);
        off.fn(off.ctx, off.base + t, w);
      }, &o);
    }
    return;
  }
  std::lock_guard<std::mutex> call_lock(call_mutex_);
  // Close the ticket first: a worker still inside the previous job's drain() then fails its
  // next claim instead of taking a task of this job with the previous job's snapshot (which ran
  // a task twice and left done_ past num_tasks, so this call never returned).
  const uint32_t gen = generation_of(ticket_.load(std::memory_order_relaxed)) + 1;
  ticket_.store((static_cast<uint64_t>(gen) << 32) | kClosed);
  fn_.store(fn, std::memory_order_release);
  ctx_.store(ctx, std::memory_order_release);
  num_tasks_.store(num_tasks, std::memory_order_release);
  done_.store(0, std::memory_order_relaxed);
  ticket_.store(static_cast<uint64_t>(gen) << 32);  // open; seq_cst: ordered before the sleepers_ load
  if (sleepers_.load() > 0) {
    { std::lock_guard<std::mutex> lock(sleep_mutex_); }
    wake_.notify_all();
  }
  drain(gen, 0);
  // The tasks still running are on the workers; wait for them without a system call.
  auto finished = [&] { return done_.load(std::memory_order_acquire) == num_tasks; };
  while (!spin_until(finished)) std::this_thread::yield();
}

void ThreadPool::worker_loop(int32_t worker) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t gen = 0;
    auto has_job = [&] {
      const uint64_t t = ticket_.load();  // seq_cst: see the sleepers_ handshake in run()
      gen = generation_of(t);
      return (gen != seen && is_open(t)) || stopping_.load(std::memory_order_relaxed);
    };
    if (!spin_until(has_job)) {
      std::unique_lock<std::mutex> lock(sleep_mutex_);
      sleepers_.fetch_add(1);  // seq_cst: ordered before the ticket load in has_job
      wake_.wait(lock, has_job);
      sleepers_.fetch_sub(1);
    }
    if (stopping_.load()) return;
    seen = gen;
    drain(gen, worker);
  }
}

}  // namespace lkv::cpu
