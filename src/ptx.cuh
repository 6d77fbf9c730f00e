// Thin wrappers over the PTX instructions the mainloops use. All but wgmma exist on
// sm_80+ (so on the RTX 4090, sm_89, and the H100, sm_90); wgmma needs sm_90a.
#pragma once

#include <cstdint>

namespace ctfuse::ptx {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// The copies take a shared-memory address (smem_addr), worked out by the caller from one
// conversion per block: converting a generic pointer at every copy read the CTA's shared
// window (S2UR SR_CgaCtaId) in the mma.sync mainloop, 3% of its stall samples.
// 4-byte asynchronous copy through L1 (.ca: neighbouring taps re-read the same x lines).
// When !valid nothing is read and the destination is zero-filled.
__device__ __forceinline__ void cp_async_4(uint32_t smem, const void* gmem, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem), "l"(gmem), "r"(valid ? 4 : 0));
}

// 16-byte asynchronous copy bypassing L1; zero-fills when !valid.
__device__ __forceinline__ void cp_async_16(uint32_t smem, const void* gmem, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem), "l"(gmem), "r"(valid ? 16 : 0));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// fp32 -> tf32, round to nearest (ties away): truncating instead biases every product.
// A NaN becomes the canonical 0x7fffffff: sm_90 emulates cvt.rna by clearing the low 13
// bits, which turns a NaN whose payload lies only there into Inf.
__device__ __forceinline__ uint32_t tf32_round(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return x != x ? 0x7fffffffu : r;
}

// The same rounding for an operand that only feeds the tensor cores, which ignore the
// low 13 bits: adding half a TF32 ulp is enough (cvt.rna is emulated on sm_90 and also
// clears those bits). Inf passes unchanged; a NaN is first made the canonical 0x7fffffff
// by a multiply by one (a NaN whose payload sat only in the ignored bits would read as
// Inf), and then passes unchanged too.
__device__ __forceinline__ uint32_t tf32_round_operand(float x) {
  float canonical;
  asm("mul.rn.f32 %0, %1, 0f3F800000;\n" : "=f"(canonical) : "f"(x));  // not folded away
  const uint32_t bits = __float_as_uint(canonical);
  return fabsf(x) < __int_as_float(0x7f800000) ? bits + 0x1000u : bits;
}

// Four 8 x 16-byte matrices from shared memory: lanes 8j..8j+7 give the row addresses of
// matrix j (16-byte aligned), and lane 4r + c receives 32-bit word c of row r of each, in
// r[j]. With 32-bit elements that is an m16n8k8 TF32 A fragment straight from a
// [row][k] tile: matrices (rows 0-7, k 0-3), (rows 8-15, k 0-3), (rows 0-7, k 4-7),
// (rows 8-15, k 4-7).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem));
}

// D = A * B + D, m16n8k8, A row-major 16x8, B column-major 8x8, tf32 in, fp32 accumulate.
__device__ __forceinline__ void mma_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// ---- Programmatic dependent launch (sm_90) --------------------------------------------
// A kernel launched with programmatic stream serialisation (launch_kernel in launch.h)
// may start while the kernel before it in the stream still runs: it must not read what
// that kernel writes, nor write what it reads, before wait_for_prior_grid(), which
// returns once the prior grid has completed and its writes are visible. allow_next_grid()
// lets the next such kernel be launched now, so its blocks are resident and waiting when
// this one ends. Both are no-ops in a kernel not launched that way, and compiled out below
// sm_90 (the host launches overlapped only on a compute capability 9.0 device whose loaded
// code was compiled from sm_90 PTX or later: select_engine in pack.cu; README, limits).
__device__ __forceinline__ void wait_for_prior_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// The same wait, returning `p` through it: every load from the result depends on the
// wait by data, so not even a read-only-cache load (__ldg), which the compiler may move
// above a plain wait, can read what the prior grid is still writing.
template <typename T>
__device__ __forceinline__ T* wait_for_prior_grid(T* p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" : "+l"(p) : : "memory");
#endif
  return p;
}

__device__ __forceinline__ void allow_next_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// ---- Hopper (sm_90a) warpgroup MMA ----------------------------------------------------
// Only compiled for sm_90a (the "a" features are not forward compatible); elsewhere these
// are empty, and the host never launches a kernel that uses them (see convt_dispatch.h).
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define CTFUSE_WGMMA_ENABLED 1
constexpr bool kWgmmaCompiled = true;
#else
constexpr bool kWgmmaCompiled = false;
#endif

// Orders this thread's register writes (A fragments, accumulators) before the next wgmma.
__device__ __forceinline__ void wgmma_fence() {
#ifdef CTFUSE_WGMMA_ENABLED
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void wgmma_commit() {
#ifdef CTFUSE_WGMMA_ENABLED
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}

// Makes this thread's generic-proxy shared-memory writes (cp.async included) visible to
// the async proxy, which is where wgmma reads its shared-memory operands.
__device__ __forceinline__ void fence_proxy_async() {
#ifdef CTFUSE_WGMMA_ENABLED
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// Waits until at most N committed wgmma groups of this warpgroup are still running.
template <int N>
__device__ __forceinline__ void wgmma_wait() {
#ifdef CTFUSE_WGMMA_ENABLED
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}

// Shared-memory matrix descriptor, no swizzle: 8-row x 16-byte core matrices, `k_stride`
// bytes apart along K and `mn_stride` bytes apart along M/N.
__device__ __forceinline__ uint64_t wgmma_desc(uint32_t smem_byte_addr, uint32_t k_stride, uint32_t mn_stride) {
  return uint64_t((smem_byte_addr & 0x3FFFF) >> 4) | uint64_t(k_stride >> 4) << 16 | uint64_t(mn_stride >> 4) << 32;
}
// The descriptor of the matrix `bytes` further on: one 32-bit add to the address field.
// A block's shared memory ends below 256 KB, so the 14-bit field never carries into the
// stride bits (and ptxas, unlike for wgmma_desc(addr + bytes), need not redo the mask
// and shifts before every wgmma).
__device__ __forceinline__ uint64_t wgmma_desc_plus(uint64_t desc, uint32_t bytes) {
  return (desc & 0xFFFFFFFF00000000ull) | uint32_t(uint32_t(desc) + (bytes >> 4));
}

// D[64 x 128] = A[64 x 8] * B[8 x 128] (+ D when `accumulate`) for the warpgroup, tf32
// in, fp32 accumulate. A comes from registers in the mma.sync m16n8k8 fragment layout (each warp its 16
// rows); B from shared memory (K-major, `b_desc`); D per warp is 16 n8-subtiles in the
// m16n8 accumulator layout.
__device__ __forceinline__ void wgmma_m64n128k8_tf32(float (&d)[16][4], const uint32_t (&a)[4], uint64_t b_desc,
                                                     bool accumulate) {
#ifdef CTFUSE_WGMMA_ENABLED
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"  // p = 0: d = a*b, the old d ignored
      "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 {"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
      "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"
      "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63"
      "}, {%64,%65,%66,%67}, %68, p, 1, 1;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
        "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
        "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]),
        "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]), "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]),
        "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]),
        "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]),
        "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(int(accumulate)));
#endif
}

// ---- Hopper TMA and mbarrier (sm_90a builds only, like wgmma) --------------------------
// An mbarrier that `count` arrivals plus the announced transaction bytes complete.
__device__ __forceinline__ void mbarrier_init(uint64_t* bar, uint32_t count) {
#ifdef CTFUSE_WGMMA_ENABLED
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count));
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}

// This thread's arrival, announcing `bytes` that asynchronous copies will deliver.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
#ifdef CTFUSE_WGMMA_ENABLED
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
#endif
}

// This thread's arrival (release: its earlier shared-memory accesses are ordered before).
__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
#ifdef CTFUSE_WGMMA_ENABLED
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
#endif
}

// Named barrier `id` (1-15; 0 is __syncthreads) over `threads` threads, a multiple of 32.
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// Moves registers between warpgroups (warp-specialised kernels): the whole warpgroup
// executes it with the same count.
template <int kRegs>
__device__ __forceinline__ void setmaxnreg_dec() {
#ifdef CTFUSE_WGMMA_ENABLED
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
#endif
}
template <int kRegs>
__device__ __forceinline__ void setmaxnreg_inc() {
#ifdef CTFUSE_WGMMA_ENABLED
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
#endif
}

// Waits until the barrier's phase `parity` has completed.
__device__ __forceinline__ void mbarrier_wait(uint64_t* bar, uint32_t parity) {
#ifdef CTFUSE_WGMMA_ENABLED
  asm volatile(
      "{\n.reg .pred done;\n"
      "WAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT_%=;\n}\n" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
#endif
}

// TMA: the box at (c0, c1, c2, c3) of a 4-d tensor map into shared memory; elements
// outside the tensor arrive as zeros. Completes `bytes` of the box on `bar`.
__device__ __forceinline__ void tma_load_4d(void* dst, const void* tensor_map, int c0, int c1, int c2, int c3,
                                            uint64_t* bar) {
#ifdef CTFUSE_WGMMA_ENABLED
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
      "[%6];\n" ::"r"(smem_addr(dst)),
      "l"(tensor_map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(smem_addr(bar))
      : "memory");
#endif
}

// A contiguous global -> shared copy by the TMA unit (bytes and addresses multiples of 16).
__device__ __forceinline__ void bulk_load(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
#ifdef CTFUSE_WGMMA_ENABLED
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
          smem_addr(dst)),
      "l"(src), "r"(bytes), "r"(smem_addr(bar))
      : "memory");
#endif
}

}  // namespace ctfuse::ptx
