/* The blocking system call both vector checks wait in, as inline assembly text: read(2) of one byte
 * from %[fd] into %[byte], again on EINTR, its result into %[res]. Written in assembly so that nothing
 * between the loads and the stores (no compiler-generated code, no C library) touches a vector register:
 * only lu's injection can, while the thread waits here. */
#define WAIT_FOR_BYTE \
    "1:\n\t" \
    "xorl %%eax, %%eax\n\t" /* read(2) */ \
    "movl %[fd], %%edi\n\t" \
    "leaq %[byte], %%rsi\n\t" \
    "movl $1, %%edx\n\t" \
    "syscall\n\t" \
    "cmpq $-4, %%rax\n\t" /* EINTR: wait again, registers untouched */ \
    "je 1b\n\t" \
    "movq %%rax, %[res]\n\t"
