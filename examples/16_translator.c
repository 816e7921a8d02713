/*
 * 16_translator.c — the course's translator in C: PyTorch's "Language translation with
 * nn.Transformer" (Seq2SeqTransformer, teacher forcing with the padding ignored, greedy
 * decoding), on a language the program makes up: a sequence of digits and its reverse.  It
 * trains, measures exact-sequence and token accuracy on held-out sequences, translates one, and
 * draws where the decoder looked (the cross-attention, which for reversal is the anti-diagonal)
 * into runs/translator_attention.svg.  Run as
 *     ./example_16_translator [steps]
 * It checks its own figure and exits 1 when fewer than 95% of the held-out sequences come out
 * right.
 */
#include "nabla.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 800;
    nb_manual_seed(1);
    /* transformer = Seq2SeqTransformer(2, 2, emb_size=64, nhead=4, vocab 3 + 10 digits, 256)
     * ids: 0 <pad>, 1 <bos>, 2 <eos>, digit d is 3 + d */
    nb_seq2seq_opts opts = {.vocab = 13, .bos = 1, .eos = 2, .d_model = 64, .nhead = 4,
                            .num_encoder_layers = 2, .num_decoder_layers = 2, .dim_feedforward = 128,
                            .max_len = 9};
    nb_module *model = nb_seq2seq_new(opts);
    if (!model) return fprintf(stderr, "%s\n", nb_error_message()), 1;
    /* optimizer = torch.optim.Adam(transformer.parameters(), lr=1e-3) */
    nb_tensor *params[128];
    nb_optim *opt = nb_adam_new(nb_module_parameters(model, params, 128), params, (nb_adam_opts){.lr = 1e-3});

    /* for src, tgt in batches: logits = model(src, tgt[:-1]); loss = loss_fn(logits, tgt[1:])
     * (CrossEntropyLoss(ignore_index=PAD_IDX)); a fresh batch of 64 sequences of 1-8 digits */
    for (int step = 1; step <= steps; step++) {
        nb_scope_begin();
        nb_tensor *src, *tgt_in, *tgt_out;
        nb_seq2seq_task_batch(NB_SEQ2SEQ_REVERSE, &opts, 64, 1, 8, (uint64_t)step, &src, &tgt_in, &tgt_out);
        nb_tensor *loss = nb_seq2seq_loss(model, src, tgt_in, tgt_out);
        nb_optim_zero_grad(opt);
        nb_backward(loss);
        nb_optim_step(opt);
        if (step % 100 == 0) printf("step %4d  loss %.4f\n", step, nb_item(loss));
        nb_scope_end();
    }

    /* greedy_decode on 500 held-out sequences (a seed the batches never used) */
    nb_module_train(model, false);
    nb_scope_begin();
    nb_tensor *src, *tgt_in, *tgt_out;
    nb_seq2seq_task_batch(NB_SEQ2SEQ_REVERSE, &opts, 500, 1, 8, 123456789, &src, &tgt_in, &tgt_out);
    double exact = 0, token = 0;
    nb_seq2seq_accuracy(nb_seq2seq_greedy(model, src, NULL), tgt_out, &exact, &token);
    printf("held-out: %.1f%% of the sequences and %.1f%% of the tokens right\n", 100 * exact, 100 * token);

    /* translate("3 1 4 1 5 9 2 6"), with the decoder's cross-attention per head */
    int32_t digits[8] = {3, 1, 4, 1, 5, 9, 2, 6}, ids[8];
    for (int i = 0; i < 8; i++) ids[i] = 3 + digits[i];
    nb_tensor *attention = NULL;
    nb_tensor *out = nb_seq2seq_greedy(model, nb_from_int32(ids, 2, (int64_t[]){1, 8}),
                                       &(nb_seq2seq_decode_opts){.cross_attention = &attention});
    int64_t t = out ? nb_shape(out)[1] : 0;
    char names[16][16];
    const char *rows[16], *cols[8];
    printf("3 1 4 1 5 9 2 6 ->");
    for (int64_t i = 0; i < t; i++) {
        int id = (int)nb_get(out, (int64_t[]){0, i});
        snprintf(names[i], sizeof names[i], id == 2 ? "<eos>" : "%d", id - 3);
        rows[i] = names[i];
        printf(" %s", names[i]);
    }
    printf("\n");
    for (int j = 0; j < 8; j++) snprintf(names[8 + j], sizeof names[8 + j], "%d", digits[j]), cols[j] = names[8 + j];

    /* plt.imshow of the last layer's attention: each head, then their mean */
    float w[4][9 * 8], mean[9 * 8] = {0};
    nb_heatmap panels[5];
    const char *titles[5] = {"head 1", "head 2", "head 3", "head 4", "mean"};
    for (int h = 0; h < 4 && attention; h++) {
        nb_tensor *head = nb_slice(nb_slice(attention, 0, 1, 2, 1), 2, h, h + 1, 1); /* layer 2 */
        nb_copy_to(head, w[h], t * 8);
        for (int64_t c = 0; c < t * 8; c++) mean[c] += w[h][c] / 4;
        panels[h] = (nb_heatmap){w[h], (int)t, 8, rows, cols, titles[h]};
    }
    panels[4] = (nb_heatmap){mean, (int)t, 8, rows, cols, titles[4]};
    mkdir("runs", 0777);
    if (attention && nb_heatmap_write_svg("runs/translator_attention.svg", 5, panels,
                                          "decoder layer 2 cross-attention") == NB_OK)
        printf("wrote runs/translator_attention.svg\n");
    nb_scope_end();
    nb_optim_free(opt);
    nb_module_free(model);
    return exact >= 0.95 ? 0 : 1;
}
