// The kernels' thread pool: every task of every job runs exactly once, on a valid worker,
// whether the workers are spinning (back-to-back jobs) or asleep (after a pause), and with
// several callers at once (as from libuv's threads).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "../cpu/thread-pool.h"
#include "test-harness.h"

namespace {

struct Job {
  std::vector<std::atomic<int>> hits;
  std::atomic<int> bad_worker{0};
  int32_t workers;
  explicit Job(size_t n, int32_t w) : hits(n), workers(w) {}
};

void count_task(void* ctx, int64_t task, int32_t worker) {
  Job& j = *static_cast<Job*>(ctx);
  j.hits[static_cast<size_t>(task)].fetch_add(1);
  if (worker < 0 || worker >= j.workers) j.bad_worker.fetch_add(1);
}

bool each_once(const Job& j) {
  for (const auto& h : j.hits)
    if (h.load() != 1) return false;
  return j.bad_worker.load() == 0;
}

}  // namespace

TEST(thread_pool_runs_each_task_once_back_to_back_and_after_sleep) {
  for (int32_t threads : {1, 2, 3, 5}) {
    lkv::cpu::ThreadPool pool(threads);
    for (int round = 0; round < 400; ++round) {
      const size_t n = static_cast<size_t>(round % 37);
      Job job(n, threads);
      pool.run(static_cast<int64_t>(n), count_task, &job);
      CHECK(each_once(job));
      // Now and then let the workers fall asleep (past the spin), so both wake paths run.
      if (round % 100 == 99) std::this_thread::sleep_for(std::chrono::microseconds(3 * lkv::cpu::ThreadPool::kSpinMicros));
    }
  }
}

TEST(thread_pool_serializes_concurrent_callers) {
  lkv::cpu::ThreadPool pool(3);
  std::atomic<int> failures{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 3; ++c) {
    callers.emplace_back([&pool, &failures, c] {
      for (int round = 0; round < 300; ++round) {
        const size_t n = static_cast<size_t>(1 + (round * 7 + c) % 50);
        Job job(n, 3);
        pool.run(static_cast<int64_t>(n), count_task, &job);
        if (!each_once(job)) failures.fetch_add(1);
      }
    });
  }
  for (auto& t : callers) t.join();
  CHECK(failures.load() == 0);
}

// Many short jobs back to back, task counts alternating low and high: a worker still leaving the
// previous job must not claim a task of the next one (an earlier version could, which ran a task
// twice and never returned). A watchdog turns a hang into a failure.
TEST(thread_pool_back_to_back_jobs_of_changing_size) {
  std::atomic<bool> finished{false};
  std::thread watchdog([&finished] {
    for (int i = 0; i < 600 && !finished.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!finished.load()) {
      std::fprintf(stderr, "thread_pool_back_to_back_jobs_of_changing_size: no progress in 60 s (deadlock)\n");
      std::_Exit(3);
    }
  });
  bool ok = true;
  for (int32_t threads : {2, 3}) {
    lkv::cpu::ThreadPool pool(threads);
    for (int round = 0; round < 20000 && ok; ++round) {
      const size_t n = round % 2 ? 2 + round % 5 : 40 + round % 23;
      Job job(n, threads);
      pool.run(static_cast<int64_t>(n), count_task, &job);
      ok = each_once(job);
    }
  }
  finished.store(true);
  watchdog.join();
  CHECK(ok);
}
