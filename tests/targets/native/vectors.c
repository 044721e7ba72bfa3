/* Holds a known pattern in the vector and floating-point registers across a blocking read().
 *
 * hold_vectors(fd) loads ymm0-ymm15 with a pattern, sets MXCSR and the x87
 * control word to values no C library code leaves behind, then waits in a
 * raw read(2) system call on fd (retried on EINTR without touching the
 * registers). When the read returns it compares every register with what it
 * loaded and returns the number of registers that changed. A call made in
 * this thread while it waited must put all of them back.
 */
#include <stdint.h>
#include <string.h>

#include "wait_for_byte.h"

#define REGS 16
#define WIDTH 32

static uint8_t before[REGS][WIDTH] __attribute__((aligned(32)));
static uint8_t after[REGS][WIDTH] __attribute__((aligned(32)));

int hold_vectors(int fd)
{
    unsigned int mxcsr_in = 0x7F80u | 0x6000u; /* all exceptions masked, round toward zero */
    unsigned short fcw_in = 0x0F7Fu;           /* x87: all masked, round toward zero, 64-bit precision */
    unsigned int mxcsr_out = 0, saved_mxcsr = 0;
    unsigned short fcw_out = 0, saved_fcw = 0;
    char byte = 0;
    long result;

    for (int r = 0; r < REGS; r++)
        for (int i = 0; i < WIDTH; i++)
            before[r][i] = (uint8_t)(r * 37 + i * 11 + 5);
    memset(after, 0, sizeof after);
    __asm__ volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(saved_mxcsr), "=m"(saved_fcw));
    __asm__ volatile(
        "ldmxcsr %[mxin]\n\t"
        "fldcw %[fcwin]\n\t"
        "vmovdqa 0(%[b]), %%ymm0\n\t"
        "vmovdqa 32(%[b]), %%ymm1\n\t"
        "vmovdqa 64(%[b]), %%ymm2\n\t"
        "vmovdqa 96(%[b]), %%ymm3\n\t"
        "vmovdqa 128(%[b]), %%ymm4\n\t"
        "vmovdqa 160(%[b]), %%ymm5\n\t"
        "vmovdqa 192(%[b]), %%ymm6\n\t"
        "vmovdqa 224(%[b]), %%ymm7\n\t"
        "vmovdqa 256(%[b]), %%ymm8\n\t"
        "vmovdqa 288(%[b]), %%ymm9\n\t"
        "vmovdqa 320(%[b]), %%ymm10\n\t"
        "vmovdqa 352(%[b]), %%ymm11\n\t"
        "vmovdqa 384(%[b]), %%ymm12\n\t"
        "vmovdqa 416(%[b]), %%ymm13\n\t"
        "vmovdqa 448(%[b]), %%ymm14\n\t"
        "vmovdqa 480(%[b]), %%ymm15\n\t"
        WAIT_FOR_BYTE
        "vmovdqa %%ymm0, 0(%[a])\n\t"
        "vmovdqa %%ymm1, 32(%[a])\n\t"
        "vmovdqa %%ymm2, 64(%[a])\n\t"
        "vmovdqa %%ymm3, 96(%[a])\n\t"
        "vmovdqa %%ymm4, 128(%[a])\n\t"
        "vmovdqa %%ymm5, 160(%[a])\n\t"
        "vmovdqa %%ymm6, 192(%[a])\n\t"
        "vmovdqa %%ymm7, 224(%[a])\n\t"
        "vmovdqa %%ymm8, 256(%[a])\n\t"
        "vmovdqa %%ymm9, 288(%[a])\n\t"
        "vmovdqa %%ymm10, 320(%[a])\n\t"
        "vmovdqa %%ymm11, 352(%[a])\n\t"
        "vmovdqa %%ymm12, 384(%[a])\n\t"
        "vmovdqa %%ymm13, 416(%[a])\n\t"
        "vmovdqa %%ymm14, 448(%[a])\n\t"
        "vmovdqa %%ymm15, 480(%[a])\n\t"
        "stmxcsr %[mxout]\n\t"
        "fnstcw %[fcwout]\n\t"
        "vzeroupper\n\t"
        : [res] "=m"(result), [mxout] "=m"(mxcsr_out), [fcwout] "=m"(fcw_out), [byte] "=m"(byte)
        : [b] "r"(before), [a] "r"(after), [fd] "r"(fd), [mxin] "m"(mxcsr_in), [fcwin] "m"(fcw_in)
        : "rax", "rdi", "rsi", "rdx", "rcx", "r11", "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4",
          "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    __asm__ volatile("ldmxcsr %0\n\tfldcw %1" : : "m"(saved_mxcsr), "m"(saved_fcw));
    if (result != 1)
        return -1;
    int changed = 0;
    for (int r = 0; r < REGS; r++)
        changed += memcmp(before[r], after[r], WIDTH) != 0;
    changed += mxcsr_out != mxcsr_in;
    changed += fcw_out != fcw_in;
    return changed;
}
