/*
 * 03_cnn_fashion.c — the course's CNN notebook in C: LeNet (two conv5-ReLU-maxpool stages, then
 * two Linear layers) on Fashion-MNIST images [1, 28, 28], Adam with lr 1e-3 and a cosine
 * schedule, trained by the library's nb_fit (the notebook's loop) with accuracy per epoch, the
 * plotted curves, and save / load (into runs/ under the current folder).  Run as
 *     ./example_03_cnn_fashion [epochs] [data_dir]
 * (5 epochs by default; Fashion-MNIST from `apt-get install dataset-fashion-mnist`).
 */
#include "nabla.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* class LeNet(nn.Module):
 *     def __init__(self):
 *         self.net = nn.Sequential(
 *             nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),   # [16, 28, 28] -> [16, 14, 14]
 *             nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),  # [32, 14, 14] -> [32, 7, 7]
 *             nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))     */
static nb_module *lenet_new(void) {
    nb_conv2d_opts pad2 = {.padding = {2, 2}};
    nb_pool2d_opts pool2 = {.kernel = {2, 2}};
    nb_module *layers[] = {
        nb_conv2d_new(1, 16, 5, 5, pad2, true),  nb_activation_new(NB_ACT_RELU, 0), nb_max_pool2d_new(pool2),
        nb_conv2d_new(16, 32, 5, 5, pad2, true), nb_activation_new(NB_ACT_RELU, 0), nb_max_pool2d_new(pool2),
        nb_flatten_new(1, -1),                   nb_linear_new(32 * 7 * 7, 128, true),
        nb_activation_new(NB_ACT_RELU, 0),       nb_linear_new(128, 10, true),
    };
    return nb_sequential_new(10, layers);
}

/* The loop itself is the library's nb_fit, as in the notebook:
 *     for epoch in range(epochs):
 *         model.train()
 *         for x, y in train_loader:
 *             optimizer.zero_grad(); out = model(x); loss = loss_fn(out, y)
 *             loss.backward(); optimizer.step()
 *         model.eval(); with torch.no_grad(): test loss and accuracy
 *         scheduler.step()
 * and this callback prints each epoch's figures (print(f"epoch {epoch + 1}: ...")). */
static bool print_epoch(const nb_fit_epoch *e, void *user) {
    (void)user;
    printf("epoch %lld: train loss %.4f acc %.2f%%, test loss %.4f acc %.2f%%\n", (long long)e->epoch,
           e->train_loss, 100 * e->train_acc, e->eval_loss, 100 * e->eval_acc);
    fflush(stdout);
    return true; /* false would stop training here */
}

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 5;
    const char *dir = argc > 2 ? argv[2] : "/usr/share/datasets/fashion-mnist";
    if (epochs < 1) {
        fprintf(stderr, "usage: %s [epochs >= 1] [data_dir]\n", argv[0]);
        return 2;
    }
    nb_manual_seed(0);

    /* transforms.ToTensor() gives each image as [1, 28, 28]: one channel.  The IDX file holds
     * [28, 28] samples, so they are given the channel dim here; bytes become floats in [0, 1]
     * one batch at a time. */
    nb_dataset *train_set = nb_mnist_read(dir, true), *test_set = nb_mnist_read(dir, false);
    if (!train_set || !test_set) {
        fprintf(stderr, "cannot read Fashion-MNIST from %s: %s\n", dir, nb_error_message());
        return 1;
    }
    nb_dataset_reshape(train_set, NB_SHAPE(1, 28, 28));
    nb_dataset_reshape(test_set, NB_SHAPE(1, 28, 28));
    nb_transforms to_tensor = {.scale = true};
    nb_loader *train_loader = nb_loader_new(train_set, (nb_loader_opts){.batch_size = 64, .shuffle = true, .transforms = to_tensor});
    nb_loader *test_loader = nb_loader_new(test_set, (nb_loader_opts){.batch_size = 1000, .transforms = to_tensor});

    /* model = LeNet(); optimizer = Adam(model.parameters(), lr=1e-3)
     * scheduler = CosineAnnealingLR(optimizer, T_max=epochs) */
    nb_module *model = lenet_new();
    nb_tensor *params[16];
    int n_params = nb_module_parameters(model, params, 16);
    nb_optim *optimizer = nb_adam_new(n_params, params, (nb_adam_opts){.lr = 1e-3});
    nb_sched *scheduler = nb_cosinelr_new(optimizer, epochs, 0.0);
    nb_module_fprint(stdout, model);
    printf("parameters: %lld\n", (long long)nb_module_num_elements(model));

    /* train for `epochs` epochs, evaluating on the test set after each (a progress bar on stderr) */
    nb_fit *fit = nb_fit_new(model, optimizer, scheduler, train_loader, test_loader,
                             &(nb_fit_opts){.epochs = epochs, .log = stderr});
    if (!fit || nb_fit_run(fit, &(nb_fit_callbacks){.on_epoch = print_epoch}) != NB_OK) {
        fprintf(stderr, "training failed: %s\n", nb_error_message());
        return 1;
    }
    const nb_curves *curves = nb_fit_info_get(fit).curves;

    /* plt.plot(train_losses); plt.plot(test_losses); ... plt.savefig(...) */
    mkdir("runs", 0777); /* the outputs go to runs/ under the current folder */
    bool saved = nb_curves_write_svg(curves, "runs/cnn_curves.svg", "LeNet on Fashion-MNIST") == NB_OK &&
                 nb_curves_write_csv(curves, "runs/cnn_curves.csv") == NB_OK &&
                 /* torch.save(model.state_dict(), "cnn.safetensors"); model2.load_state_dict(...) */
                 nb_module_save(model, "runs/cnn.safetensors", 0, NULL, NULL) == NB_OK;
    nb_module *model2 = lenet_new();
    nb_status loaded = saved ? nb_module_load(model2, "runs/cnn.safetensors") : nb_error_code();
    nb_eval_result r1 = {0}, r2 = {0};
    nb_evaluate(model, test_loader, 0, &r1);
    nb_evaluate(model2, test_loader, 0, &r2);
    printf("saved and reloaded: accuracy %.2f%% -> %.2f%% (%s)\n", 100 * r1.accuracy, 100 * r2.accuracy,
           loaded == NB_OK && r1.accuracy == r2.accuracy ? "identical" : nb_error_message());
    if (saved) printf("wrote runs/cnn_curves.svg, runs/cnn_curves.csv, runs/cnn.safetensors\n");

    nb_module_free(model2);
    nb_fit_free(fit);
    nb_sched_free(scheduler);
    nb_optim_free(optimizer);
    nb_module_free(model);
    nb_loader_free(train_loader);
    nb_loader_free(test_loader);
    nb_dataset_free(train_set);
    nb_dataset_free(test_set);
    nb_release_memory();
    return loaded == NB_OK ? 0 : 1;
}
