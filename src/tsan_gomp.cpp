// Built only with the CMake option AM_TSAN (.ci/tsan): what ThreadSanitizer
// needs to know about GNU OpenMP.
//
// libgomp is not built with TSan, so TSan does not see how it hands a
// parallel region's data to the team, nor its barriers and critical sections,
// and would report every table passed from one phase to the next as a race.
// The linker routes the kernel's calls to those entry points through the
// wrappers below (-Wl,--wrap=...), which state the happens-before edges they
// imply: the caller's writes before a region are seen by the team, the team's
// writes by the caller after it, and each barrier or critical section orders
// the team's accesses.  The kernel's own code (csrc/) is unchanged.
#include <sanitizer/tsan_interface.h>

extern "C" {
void __real_GOMP_parallel(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags);
void __real_GOMP_barrier(void);
void __real_GOMP_critical_name_start(void** name);
void __real_GOMP_critical_name_end(void** name);
void __wrap_GOMP_parallel(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags);
void __wrap_GOMP_barrier(void);
void __wrap_GOMP_critical_name_start(void** name);
void __wrap_GOMP_critical_name_end(void** name);
}

namespace {

// One parallel region; its members' addresses stand for its fork, join and barriers.
struct Region {
    void (*fn)(void*);
    void* data;
    char fork = 0, end = 0, join = 0;
    // A thread passes barrier i + 1 only after every thread has left barrier
    // i, so two alternating addresses keep successive barriers apart.
    char barrier[2] = {0, 0};
};

thread_local Region* current_region = nullptr;
thread_local unsigned barriers_passed = 0;

void run_member(void* p) {
    Region* r = static_cast<Region*>(p);
    __tsan_acquire(&r->fork);
    Region* outer = current_region;
    const unsigned outer_passed = barriers_passed;
    current_region = r;
    barriers_passed = 0;
    r->fn(r->data);
    // The region's implicit closing barrier, made explicit so TSan sees it:
    // what any member did in the region happens before every member's later
    // work (a pool thread freeing its thread_local counters, say).
    __tsan_release(&r->end);
    __real_GOMP_barrier();
    __tsan_acquire(&r->end);
    current_region = outer;
    barriers_passed = outer_passed;
    __tsan_release(&r->join);
}

}  // namespace

extern "C" void __wrap_GOMP_parallel(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags) {
    Region r;
    r.fn = fn;
    r.data = data;
    __tsan_release(&r.fork);
    __real_GOMP_parallel(&run_member, &r, num_threads, flags);
    __tsan_acquire(&r.join);
}

extern "C" void __wrap_GOMP_barrier(void) {
    Region* r = current_region;
    if (r == nullptr) {
        __real_GOMP_barrier();
        return;
    }
    char* sync = &r->barrier[barriers_passed++ & 1];
    __tsan_release(sync);
    __real_GOMP_barrier();
    __tsan_acquire(sync);
}

extern "C" void __wrap_GOMP_critical_name_start(void** name) {
    __real_GOMP_critical_name_start(name);
    __tsan_acquire(name);
}

extern "C" void __wrap_GOMP_critical_name_end(void** name) {
    __tsan_release(name);
    __real_GOMP_critical_name_end(name);
}
