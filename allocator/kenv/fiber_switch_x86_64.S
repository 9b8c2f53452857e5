/*
 * fiber_switch_x86_64.S - the deterministic runtime's context switch.
 *
 * slabfuzz_fiber_switch(void **save_sp, void *load_sp): pushes the callee-saved
 * registers and the SSE/x87 control words on the current stack, stores the stack
 * pointer in *save_sp, loads load_sp and pops the same frame from it. A new fiber's
 * stack is prepared by fiber.cc so that the pop "returns" into slabfuzz_fiber_start,
 * which calls entry(arg) with entry in r13 and arg in r12. No signal mask is touched:
 * a switch costs a few nanoseconds, not a system call.
 */
	.text
	.globl	slabfuzz_fiber_switch
	.type	slabfuzz_fiber_switch,@function
slabfuzz_fiber_switch:
	.cfi_startproc
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	subq	$8, %rsp
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	addq	$8, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.cfi_endproc
	.size	slabfuzz_fiber_switch,.-slabfuzz_fiber_switch

	.globl	slabfuzz_fiber_start
	.type	slabfuzz_fiber_start,@function
slabfuzz_fiber_start:
	.cfi_startproc
	.cfi_undefined rip
	movq	%r12, %rdi
	callq	*%r13
	ud2
	.cfi_endproc
	.size	slabfuzz_fiber_start,.-slabfuzz_fiber_start

	.section .note.GNU-stack,"",@progbits
