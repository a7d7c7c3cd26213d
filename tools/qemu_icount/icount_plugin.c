// A QEMU TCG plugin for qemu-user that counts the guest instructions a program executes, and the
// count at each write(2)/writev(2) the program makes, so a driver can attribute the instructions
// between two lines the program logs (e.g. "encoding image slice" ... "image slice encoded") to
// that phase. Used by tools/qemu_icount/encode_icount.py as glimpse's stand-in for timing ARM
// CPUs we have no board for (issue 27): a count of work, not of cycles.
//
// Only the few entry points this plugin needs are declared here (QEMU's plugin ABI, version 1,
// as exported by Debian 12's qemu-user 7.2: `nm -D /usr/bin/qemu-aarch64 | grep qemu_plugin`);
// Debian ships no qemu-plugin.h. Build (host compiler, not the cross compiler):
//   cc -O2 -shared -fPIC -o libicount.so icount_plugin.c
// Run:
//   qemu-aarch64 -plugin ./libicount.so,out=marks.txt PROGRAM ARGS...
// marks.txt: one line per write: "<instructions so far> <fd> <bytes requested>", then
// "total <instructions>" if the program exits normally.
//
// The counter is one 64-bit add per translated block, inlined by TCG (no helper call): cheap,
// but not atomic. Guest threads run on separate host threads, so run the measured program with
// one compute thread (e.g. -t 1); other threads that only sleep or log add negligible error.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t;  // opaque here: not read
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 = 0 };

typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb* tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void* userdata);
typedef void (*qemu_plugin_vcpu_syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num,
                                              uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
                                              uint64_t a6, uint64_t a7, uint64_t a8);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb* tb, enum qemu_plugin_op op, void* ptr,
                                              uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb* tb);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_syscall_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void* userdata);
void qemu_plugin_outs(const char* string);

#define EXPORT __attribute__((visibility("default")))
EXPORT int qemu_plugin_version = 1;

static uint64_t executed_instructions;
static FILE* marks;

// aarch64 Linux system call numbers (asm-generic): write and writev.
enum { kSysWritev = 66, kSysWrite = 64 };

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed_instructions,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2, uint64_t a3,
                       uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8) {
    (void)id, (void)vcpu, (void)a2, (void)a4, (void)a5, (void)a6, (void)a7, (void)a8;
    if (num != kSysWrite && num != kSysWritev) return;
    // writev's third argument is an iovec count, not bytes: the driver only needs the order.
    fprintf(marks, "%llu %llu %llu%s\n", (unsigned long long)executed_instructions, (unsigned long long)a1,
            (unsigned long long)a3, num == kSysWritev ? " writev" : "");
    // Flushed per mark: the driver may stop the program once it has the phases it wants, and a
    // killed program never reaches the atexit callback.
    fflush(marks);
}

static void on_exit_program(qemu_plugin_id_t id, void* userdata) {
    (void)id, (void)userdata;
    fprintf(marks, "total %llu\n", (unsigned long long)executed_instructions);
    fclose(marks);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info, int argc, char** argv) {
    (void)info;
    const char* out = NULL;
    for (int i = 0; i < argc; ++i)
        if (strncmp(argv[i], "out=", 4) == 0) out = argv[i] + 4;
    if (!out) {
        qemu_plugin_outs("icount plugin: give out=FILE (-plugin libicount.so,out=marks.txt)\n");
        return -1;
    }
    marks = fopen(out, "w");
    if (!marks) {
        qemu_plugin_outs("icount plugin: cannot open the out= file for writing\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_exit_program, NULL);
    return 0;
}
