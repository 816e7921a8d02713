/*
 * device.c — moving tensors between devices.  This build has the CPU backend only, so a move
 * to the CPU is a copy and any other device is an error that says what is missing.  The copy
 * is detached (no graph node), like nb_persist, but lands in the current home: the innermost
 * scope, or the caller when none is open.
 */
#include "core.h"

static const char *device_name(nb_device d) {
    static const char *const names[NB_DEVICE_COUNT] = {"cpu", "cuda"};
    return (unsigned)d < NB_DEVICE_COUNT ? names[d] : "unknown";
}

nb_tensor *nb_to_device(const nb_tensor *t, nb_device device) {
    if (!nb__alive(t)) return nb__fail_input("to_device", t);
    if ((unsigned)device >= NB_DEVICE_COUNT)
        return nb__fail(NB_ERR_DEVICE, "to_device: unknown device %d", (int)device);
    if (device != NB_CPU || t->device != NB_CPU)
        return nb__fail(NB_ERR_DEVICE, "to_device: this build has no %s backend",
                        device_name(device != NB_CPU ? device : t->device));
    return nb__clone_in(nb__current_arena(), t);
}
