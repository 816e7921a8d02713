/*
 * nabla/dist.h — training on many processes: process groups, data parallelism, SyncBatchNorm.
 *
 * A process group is every process of the job (MPI's COMM_WORLD), started by the cluster's own
 * launcher: `mpirun -np 4 ./train`.  Collectives are called by every rank in the same order, on
 * float32 tensors of the same shape on every rank; each one first agrees on the shapes, so a rank
 * whose tensor differs makes the call fail on every rank (NB_ERR_SHAPE, the message names the op,
 * the rank and its shape) instead of hanging.  Tensors may live on any backend and be views:
 * where the backend's memory is the host's and the tensor is contiguous, MPI reads and writes it
 * in place; otherwise it travels through a host copy.
 *
 * The library is built with the distributed part only where MPI is found (Debian's OpenMPI).
 * Without it every call below fails with NB_ERR_DEVICE and "dist: this build has no MPI", except
 * nb_dist_rank (0), nb_dist_size (1) and nb_dist_is_initialized (false): a single process is
 * rank 0 of a group of one.  The same three answers hold in an MPI build before nb_dist_init;
 * collectives then fail with NB_ERR_ARG ("not initialised").
 *
 * Faults: a call that gets no answer from the other ranks within NB_DIST_TIMEOUT seconds (an
 * environment variable read by nb_dist_init; default 600, torch's NCCL default), because a rank
 * died, hangs or called something else, prints which call on which rank waited and ends the
 * whole job (MPI_Abort), where MPI alone would wait for ever.
 *
 * Process-wide state: call everything from one thread (the one that called nb_dist_init).
 */
/* Included by nabla.h (inside its extern "C"); include that one. */
#ifndef NABLA_DIST_H
#define NABLA_DIST_H

typedef struct nb_module nb_module;

/* Joins the job (MPI_Init on argc/argv, which may be NULL); adopts an MPI the caller already
 * initialised.  Calling it twice is NB_ERR_ARG. */
NB_API nb_status nb_dist_init(int *argc, char ***argv);
/* Leaves it (MPI_Finalize, when nb_dist_init initialised MPI); after it nothing may be called
 * again in this process.  NB_ERR_ARG when not initialised. */
NB_API nb_status nb_dist_finalize(void);
NB_API bool nb_dist_is_initialized(void);
NB_API int nb_dist_rank(void); /* 0 .. size - 1 */
NB_API int nb_dist_size(void);

typedef enum { NB_REDUCE_SUM, NB_REDUCE_MEAN, NB_REDUCE_COUNT } nb_dist_reduce;

/* In place: t = the sum (or the mean, the sum / size) of every rank's t. */
NB_API nb_status nb_dist_allreduce(nb_tensor *t, nb_dist_reduce op);
/* In place: t = root's t. */
NB_API nb_status nb_dist_broadcast(nb_tensor *t, int root);
/* A new tensor [size, t's shape] whose slice r is rank r's t (torch.stack of all_gather). */
NB_API nb_tensor *nb_dist_allgather(const nb_tensor *t);
/* t [size k, ...] on every rank: a new tensor [k, ...], rows rank k .. rank k + k - 1 of the
 * sum (or mean) of every rank's t (torch's reduce_scatter_tensor).  NB_ERR_SHAPE when dim 0 is
 * not a multiple of size. */
NB_API nb_tensor *nb_dist_reduce_scatter(const nb_tensor *t, nb_dist_reduce op);
/* Point to point: t's elements to rank dst; recv fills t from rank src and fails (NB_ERR_SHAPE,
 * naming both counts) when src sent another number of elements. */
NB_API nb_status nb_dist_send(const nb_tensor *t, int dst);
NB_API nb_status nb_dist_recv(nb_tensor *t, int src);
NB_API nb_status nb_dist_barrier(void);

/* ---------------------------------------------------------------- data parallel
 * torch's DistributedDataParallel: every rank holds the whole model and trains on its own share
 * of each batch (a loader with num_replicas and rank, nabla/data.h); after backward the gradients
 * are averaged over ranks, so every rank's optimiser takes the same step and the copies stay
 * equal.  With the per-rank batch B / size and a mean loss, that is the step one process takes
 * on batch B.
 */
typedef struct nb_ddp nb_ddp;

/* Starts data parallel training of model: broadcasts its parameters and buffers from rank 0 (so
 * every rank starts from rank 0's initialisation) and groups the parameters into buckets of
 * about bucket_bytes (0: 25 MiB, torch's default), in reverse order, the order backward makes
 * their gradients.  Every rank must pass a model of the same parameter shapes (checked).  With no
 * process group (nb_dist_is_initialized false) it is a group of one: nothing is communicated.
 * The model must outlive the nb_ddp. */
NB_API nb_ddp *nb_ddp_new(nb_module *model, size_t bucket_bytes);
/* Call after backward on every rank: each parameter's gradient becomes the mean over ranks, one
 * allreduce per bucket.  A parameter without a gradient on this rank counts as zeros (and stays
 * without one).  Gradient accumulation: backward on several micro-batches, then this once before
 * the step (the inner backwards communicate nothing, as under torch's no_sync). */
NB_API nb_status nb_ddp_sync_grads(nb_ddp *d);
/* torch's overlap of communication with backward: a hook on every parameter that requires grad
 * (nabla/autograd.h) copies the gradient each backward pass computes for it into its bucket, and
 * a bucket whose parameters are all in starts a non-blocking allreduce at once, while backward
 * goes on (buckets start in their order on every rank).  The gradient the pass stores in .grad
 * is this rank's own until nb_ddp_finish, which must be called on every rank after backward and
 * before the step (nb_fit_opts.before_step).  nb_ddp_free removes the hooks.  Nothing with no
 * process group.  The .grad that results equals nb_ddp_sync_grads' when gradients are zeroed
 * before each backward (nb_fit does), not when they accumulate over several passes (a pass not
 * followed by nb_ddp_finish is dropped by the next one: its reductions are waited for, unread;
 * such a pass must use the same parameters on every rank, as its reductions must pair up). */
NB_API nb_status nb_ddp_sync_in_backward(nb_ddp *d);
/* Waits for the buckets backward started and writes each mean into its parameter's .grad.
 * Unused parameters (whose hook did not run this pass on this rank: not reached by its forward)
 * count as zeros, torch's find_unused_parameters simplified: every bucket is reduced, none waits
 * for ever, and a parameter without a .grad on this rank stays without.  NB_OK at once without
 * nb_ddp_sync_in_backward or a process group. */
NB_API nb_status nb_ddp_finish(nb_ddp *d);
/* How much of the communication backward hid, since nb_ddp_sync_in_backward: of the gradient
 * floats nb_ddp_finish has averaged, the fraction whose allreduce had already completed when it
 * was called (0 before the first; -1 with NB_ERR_NULL for NULL).  A count, not a time, so a busy
 * machine blurs it less than timings: 0 when every bucket still travels after backward (one
 * bucket, or MPI not moved on), 1 when backward hid them all. */
NB_API double nb_ddp_overlapped_fraction(const nb_ddp *d);
NB_API int nb_ddp_num_buckets(const nb_ddp *d); /* -1 for NULL */
NB_API void nb_ddp_free(nb_ddp *d);              /* NULL: nothing */

/* ---------------------------------------------------------------- SyncBatchNorm
 * torch.nn.SyncBatchNorm: BatchNorm (nabla/nn.h) whose statistics in training are those of the
 * whole batch over every rank: each rank normalises its share with the mean and variance of all
 * the shares together, and the running statistics (the same on every rank) use them.  So N ranks
 * each on 1/N of a batch give the outputs, running statistics and input gradients one process
 * gets with BatchNorm on the whole batch; the parameters' gradients are each rank's part of
 * the whole's, which data parallel averages (or nb_dist_allreduce sums) as any other.  Data
 * parallel keeps BatchNorm per rank unless the model is converted (torch's default too).
 * Input [N, C, ...] (BatchNorm1d's and BatchNorm2d's); every rank must call its forward in
 * training mode the same number of times, as any collective (N may differ between ranks).  In
 * eval mode it is BatchNorm: the running statistics, no communication.  Without a process group
 * it is BatchNorm on the process's batch.  Parameters and buffers are BatchNorm's, under the
 * same names, so a model trained with it loads as BatchNorm in one process.  Costs: three small
 * allreduces (C floats) per forward, two per backward (in the backward pass's hooks).
 * A SyncBatchNorm is made by converting a BatchNorm: */
/* torch's SyncBatchNorm.convert_sync_batchnorm, in place: every BatchNorm1d and BatchNorm2d in
 * model (model itself included) becomes a SyncBatchNorm, keeping its parameters, buffers, mode
 * and hooks (an optimiser made before still holds the same tensors).  Returns how many were
 * converted (0: none), -1 with NB_ERR_NULL for a NULL model. */
NB_API int nb_module_convert_sync_batchnorm(nb_module *model);

/* ---------------------------------------------------------------- tensor parallel
 * Megatron-LM's tensor parallel MLP (Shoeybi et al. 2019): the weight matrices of each pair of
 * Linear layers (the first, then the next with only elementwise activations between: an MLP's
 * hidden layer) are cut across the ranks — the first by output rows (ColumnParallelLinear),
 * the second by input columns (RowParallelLinear, whose partial products are summed over ranks,
 * then its whole bias added) — so a pair costs one allreduce in forward and, where the pair's
 * input needs a gradient, one in backward (src/dist/tensor_parallel.c explains the maths).
 * Every rank runs the whole batch and gets the same output and loss; an optimiser on the
 * sharded model's parameters takes, slice for slice, the step one process takes on the whole
 * model.  Layers outside pairs stay whole on every rank.  Gradient clipping by global norm
 * would need the norm over every rank's slices: do not clip a sharded model's gradients.
 */

/* Turns seq, a Sequential built the same way on every rank, into its tensor parallel form in
 * place: every rank first takes rank 0's parameters and buffers (so all start from one
 * initialisation: one process's, when rank 0 built it as one process would), then each pair's
 * Linear layers are replaced by this rank's slices (same names: "0.weight" stays "0.weight",
 * of [H/N, I]).  Returns the number of pairs cut (0: nothing to cut; the model is replicated),
 * or -1 with the error: NB_ERR_NULL, NB_ERR_ARG for a model that is not a Sequential,
 * NB_ERR_SHAPE when a cut dim is not a multiple of the ranks or the models differ between ranks,
 * the transport's errors (NB_ERR_DEVICE without MPI).  A failure may leave earlier pairs cut. */
NB_API int nb_tp_shard(nb_module *seq);
/* Collective: writes into full (a model as seq was before nb_tp_shard, say built again from the
 * same spec) the whole of every parameter and buffer of the sharded seq, on every rank — what
 * one process saves and loads (nb_module_save).  NB_ERR_SHAPE naming the layer when full's
 * layers are not seq's. */
NB_API nb_status nb_tp_gather(const nb_module *seq, nb_module *full);

/* ---------------------------------------------------------------- pipeline parallel
 * GPipe and 1F1B (src/dist/pipeline.c explains both and how the bubble is measured): a
 * Sequential cut into nb_dist_size() stages of consecutive layers, stage r on rank r; each
 * step cuts the batch into micro-batches that go through the stages, activations sent forward
 * and their gradients back, the gradients summed over micro-batches in .grad.  With the mean
 * cross-entropy that is the step one process takes on the whole batch.  Each rank trains its
 * stage's parameters (nb_module_parameters of the model, which keeps only them) with its own
 * optimiser; the caller zeroes the gradients before each step and steps after it, as always.
 * Layers that use the batch's statistics (BatchNorm) see a micro-batch's, as under torch's
 * pipelines.  With no process group it is one stage: micro-batches accumulated in one process.
 */
typedef enum { NB_PIPE_GPIPE, NB_PIPE_1F1B, NB_PIPE_SCHEDULE_COUNT } nb_pipe_schedule;

typedef struct nb_pipe_opts {
    int micro_batches;          /* m >= 1; 0 means 1 */
    nb_pipe_schedule schedule;  /* NB_PIPE_GPIPE (the zero value) or NB_PIPE_1F1B */
    /* stages + 1 layer indices: stage s runs layers starts[s] .. starts[s + 1] - 1, starts[0] = 0
     * and starts[stages] = the layer count, rising.  NULL: cuts that balance parameter counts
     * (each stage at least one layer, and one with parameters where the model has as many
     * layers with parameters as stages). */
    const int *starts;
    float label_smoothing; /* of the cross-entropy (nb_ce_opts), in steps and evaluation */
    /* With starts NULL: a micro-batch of inputs (the same shape on every rank, say a batch's
     * first B / m rows) to cut by measured time instead of parameter counts, so that the stages
     * take about equal times, as the bubble's theory assumes.  Every rank times each layer's
     * forward and backward on it (the layer's input a copy that requires grad; in eval mode, so
     * running statistics and random draws stay untouched) in thread CPU time, the least of 3
     * runs; the times are summed over the ranks, and the cut whose slowest stage is fastest is
     * taken (each stage at least one layer).  The loss is not timed.  The parameters' gradients
     * are cleared after (nb_clear_grad).  NULL: the parameter-count cut. */
    const nb_tensor *profile_input;
} nb_pipe_opts;

typedef struct nb_pipe nb_pipe;

/* Cuts seq (a Sequential built the same way on every rank) for this rank: every rank first
 * takes rank 0's parameters and buffers, then the layers of other stages are freed (each
 * replaced by an empty Sequential, so the kept ones keep their names, "2.weight").  seq stays
 * the caller's and must outlive the nb_pipe.  opts NULL: GPipe, one micro-batch.  NULL with
 * NB_ERR_NULL, NB_ERR_ARG (not a Sequential, fewer layers than stages, bad starts or counts),
 * NB_ERR_SHAPE (models that differ between ranks), or the transport's errors. */
NB_API nb_pipe *nb_pipe_new(nb_module *seq, const nb_pipe_opts *opts);
NB_API void nb_pipe_free(nb_pipe *p); /* NULL: nothing; seq stays cut */
/* This stage's layers: first .. end - 1 (-1 for NULL). */
NB_API int nb_pipe_stage_first(const nb_pipe *p);
NB_API int nb_pipe_stage_end(const nb_pipe *p);
/* Collective: forward and backward of the batch x [B, ...] with int32 labels y [B] (the same on
 * every rank; only the first stage reads x and the last y; when x requires grad the first
 * stage adds the input's gradient to x.grad), B >= m, cut into m micro-batches
 * of B / m rows (rows j B / m .. (j + 1) B / m - 1 when m does not divide B), on the schedule;
 * the stage's parameters' .grad gets the batch's gradient added.  *loss (may be NULL) gets the
 * batch's mean cross-entropy on every rank.  NB_ERR_SHAPE for other shapes; a failing op's error
 * after "pipe_step: stage 1, forward of micro-batch 3: ". */
NB_API nb_status nb_pipe_step(nb_pipe *p, nb_tensor *x, nb_tensor *y, double *loss);

/* The bubble as measured: the steps' schedule replayed on one core per stage with the op times
 * each stage measured in its thread's CPU time (src/dist/pipeline.c), so that ranks sharing
 * cores do not distort it. */
typedef struct nb_pipe_stats {
    int64_t steps;         /* since nb_pipe_new or nb_pipe_stats_reset */
    double stage_busy;     /* this stage's forward and backward time in the last step, seconds */
    double step_seconds;   /* a step's mean length replayed with each op's own time */
    double bubble;         /* the stages' mean idle share, replayed with each stage's median
                              forward and backward time (robust to a loaded machine's jitter) */
    double bubble_each_op; /* the same replayed with each op's own time */
    double theory;         /* (p - 1) / (m + p - 1) */
} nb_pipe_stats;
NB_API nb_pipe_stats nb_pipe_stats_get(const nb_pipe *p); /* zeros for NULL */
NB_API void nb_pipe_stats_reset(nb_pipe *p);
/* Collective: writes into full (seq as it was before nb_pipe_new) every stage's parameters and
 * buffers, on every rank.  NB_ERR_SHAPE naming the layer when full's layers are not seq's. */
NB_API nb_status nb_pipe_gather(const nb_pipe *p, nb_module *full);
/* Collective: the forward of a batch x [B, ...] with labels y [B] (as nb_pipe_step's) through
 * the stages in eval mode and without a graph (torch's model.eval() under no_grad; the mode
 * put back), in min(m, B) micro-batches: *loss (may be NULL) gets the batch's mean
 * cross-entropy and *correct (may be NULL) its rows whose largest logit is their label
 * (nb_count_correct), on every rank.  What nb_fit's evaluation of a pipeline runs (see
 * nb_fit_opts.step).  Errors as nb_pipe_step's, after "pipe_eval: stage 1: ". */
NB_API nb_status nb_pipe_eval(nb_pipe *p, nb_tensor *x, nb_tensor *y, double *loss, int64_t *correct);
/* The rows of the last nb_pipe_step's or nb_pipe_eval's batch whose largest logit is their
 * label, the same on every rank (the training accuracy nb_fit reports); -1 for NULL. */
NB_API int64_t nb_pipe_correct(const nb_pipe *p);

#endif
