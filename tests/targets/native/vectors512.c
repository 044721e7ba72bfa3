/* The AVX-512 part of the state a borrowed thread must get back: zmm0-zmm31 (all 64 bytes) and k1-k7.
 *
 * hold_avx512(fd) loads every zmm register and the opmask registers k1-k7
 * with a pattern, waits in a raw read(2) on fd (retried on EINTR without
 * touching the registers), then stores them again and returns how many
 * changed. Built with -mavx512f, and called only on a CPU that has it.
 */
#include <stdint.h>
#include <string.h>

#include "wait_for_byte.h"

#define ZMMS 32
#define WIDTH 64
#define KS 7

static uint8_t before[ZMMS][WIDTH] __attribute__((aligned(64)));
static uint8_t after[ZMMS][WIDTH] __attribute__((aligned(64)));
static uint16_t k_before[KS], k_after[KS];

#define LOAD(n) "vmovdqa64 " #n "*64(%[b]), %%zmm" #n "\n\t"
#define STORE(n) "vmovdqa64 %%zmm" #n ", " #n "*64(%[a])\n\t"
#define ALL(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15) \
    M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27) M(28) M(29) M(30) M(31)

int hold_avx512(int fd)
{
    char byte = 0;
    long result;

    for (int r = 0; r < ZMMS; r++)
        for (int i = 0; i < WIDTH; i++)
            before[r][i] = (uint8_t)(r * 53 + i * 7 + 3);
    for (int k = 0; k < KS; k++)
        k_before[k] = (uint16_t)(0x1111u * (k + 1) ^ 0x5A5Au);
    memset(after, 0, sizeof after);
    memset(k_after, 0, sizeof k_after);
    __asm__ volatile(
        ALL(LOAD)
        "kmovw 0(%[kb]), %%k1\n\t"
        "kmovw 2(%[kb]), %%k2\n\t"
        "kmovw 4(%[kb]), %%k3\n\t"
        "kmovw 6(%[kb]), %%k4\n\t"
        "kmovw 8(%[kb]), %%k5\n\t"
        "kmovw 10(%[kb]), %%k6\n\t"
        "kmovw 12(%[kb]), %%k7\n\t"
        WAIT_FOR_BYTE
        ALL(STORE)
        "kmovw %%k1, 0(%[ka])\n\t"
        "kmovw %%k2, 2(%[ka])\n\t"
        "kmovw %%k3, 4(%[ka])\n\t"
        "kmovw %%k4, 6(%[ka])\n\t"
        "kmovw %%k5, 8(%[ka])\n\t"
        "kmovw %%k6, 10(%[ka])\n\t"
        "kmovw %%k7, 12(%[ka])\n\t"
        "vzeroupper\n\t"
        : [res] "=m"(result), [byte] "=m"(byte)
        : [b] "r"(before), [a] "r"(after), [kb] "r"(k_before), [ka] "r"(k_after), [fd] "r"(fd)
        : "rax", "rdi", "rsi", "rdx", "rcx", "r11", "memory", "cc",
          "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22",
          "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31",
          "k1", "k2", "k3", "k4", "k5", "k6", "k7");
    if (result != 1)
        return -1;
    int changed = 0;
    for (int r = 0; r < ZMMS; r++)
        changed += memcmp(before[r], after[r], WIDTH) != 0;
    for (int k = 0; k < KS; k++)
        changed += k_before[k] != k_after[k];
    return changed;
}
