/*
 * 02_mlp_fashion.c — the course's MLP notebook in C: a model class built with Sequential, the
 * training loop (zero_grad / forward / loss / backward / step), accuracy, a cosine schedule,
 * the plotted curves, and save / load (into runs/ under the current folder).  Run as
 *     ./example_02_mlp_fashion [epochs] [data_dir]
 * (Fashion-MNIST from `apt-get install dataset-fashion-mnist` by default).
 */
#include "nabla.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* class MLP(nn.Module):
 *     def __init__(self):
 *         self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(),
 *                                  nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))       */
static nb_module *mlp_new(void) {
    nb_module *layers[] = {
        nb_flatten_new(1, -1),       nb_linear_new(784, 64, true), nb_activation_new(NB_ACT_RELU, 0),
        nb_linear_new(64, 64, true), nb_activation_new(NB_ACT_RELU, 0), nb_linear_new(64, 10, true),
    };
    return nb_sequential_new(6, layers);
}

/* model.eval(); with torch.no_grad(): mean loss and accuracy over a loader */
static void evaluate(nb_module *model, nb_loader *loader, double *loss, double *acc) {
    nb_module_train(model, false);
    double sum = 0;
    int64_t correct = 0, seen = 0;
    nb_tensor *x, *y;
    nb_loader_reset(loader);
    NB_NO_GRAD {
        while (nb_loader_next(loader, &x, &y)) {
            nb_scope_begin();
            nb_tensor *out = nb_module_forward(model, x);
            sum += nb_item(nb_cross_entropy(out, y, NULL)) * (double)nb_size(x, 0);
            correct += nb_count_correct(out, y);
            seen += nb_size(x, 0);
            nb_scope_end();
        }
    }
    nb_module_train(model, true);
    *loss = sum / (double)seen;
    *acc = (double)correct / (double)seen;
}

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 10;
    const char *dir = argc > 2 ? argv[2] : "/usr/share/datasets/fashion-mnist";
    nb_manual_seed(0);

    /* train_loader = DataLoader(train_set, batch_size=64, shuffle=True) — bytes become floats
     * in [0, 1] one batch at a time (transforms.ToTensor()) */
    nb_dataset *train_set = nb_mnist_read(dir, true), *test_set = nb_mnist_read(dir, false);
    if (!train_set || !test_set) {
        fprintf(stderr, "cannot read Fashion-MNIST from %s: %s\n", dir, nb_error_message());
        return 1;
    }
    nb_transforms to_tensor = {.scale = true};
    nb_loader *train_loader = nb_loader_new(train_set, (nb_loader_opts){.batch_size = 64, .shuffle = true, .transforms = to_tensor});
    nb_loader *test_loader = nb_loader_new(test_set, (nb_loader_opts){.batch_size = 1000, .transforms = to_tensor});

    /* model = MLP(); optimizer = SGD(model.parameters(), lr=0.01, momentum=0.9)
     * scheduler = CosineAnnealingLR(optimizer, T_max=epochs) */
    nb_module *model = mlp_new();
    nb_tensor *params[16];
    int n_params = nb_module_parameters(model, params, 16);
    nb_optim *optimizer = nb_sgd_new(n_params, params, (nb_sgd_opts){.lr = 0.01, .momentum = 0.9});
    nb_sched *scheduler = nb_cosinelr_new(optimizer, epochs, 0.0);
    nb_curves *curves = nb_curves_new();
    nb_module_fprint(stdout, model);

    for (int epoch = 0; epoch < epochs; epoch++) {
        double train_loss = 0;
        int64_t correct = 0, seen = 0;
        nb_tensor *x, *y;
        nb_loader_set_epoch(train_loader, epoch);
        while (nb_loader_next(train_loader, &x, &y)) {
            nb_scope_begin();                            /* this step's tensors live here */
            nb_optim_zero_grad(optimizer);               /* optimizer.zero_grad()          */
            nb_tensor *out = nb_module_forward(model, x); /* out = model(x)                */
            nb_tensor *loss = nb_cross_entropy(out, y, NULL); /* loss = loss_fn(out, y)    */
            nb_backward(loss);                           /* loss.backward()                */
            nb_optim_step(optimizer);                    /* optimizer.step()               */
            train_loss += nb_item(loss) * (double)nb_size(x, 0);
            correct += nb_count_correct(out, y);
            seen += nb_size(x, 0);
            nb_scope_end();
        }
        double test_loss, test_acc;
        evaluate(model, test_loader, &test_loss, &test_acc);
        nb_sched_step(scheduler);                        /* scheduler.step()               */
        nb_curves_add(curves, (float)(train_loss / seen), (float)test_loss, (float)correct / seen, (float)test_acc);
        printf("epoch %d: train loss %.4f acc %.2f%%, test loss %.4f acc %.2f%%\n", epoch + 1,
               train_loss / seen, 100.0 * correct / seen, test_loss, 100 * test_acc);
    }

    /* plt.plot(train_losses); plt.plot(test_losses); ... plt.savefig(...) */
    mkdir("runs", 0777); /* the outputs go to runs/ under the current folder */
    bool saved = nb_curves_write_svg(curves, "runs/mlp_curves.svg", "MLP on Fashion-MNIST") == NB_OK &&
                 nb_curves_write_csv(curves, "runs/mlp_curves.csv") == NB_OK &&
                 /* torch.save(model.state_dict(), "mlp.safetensors"); model2.load_state_dict(...) */
                 nb_module_save(model, "runs/mlp.safetensors", 0, NULL, NULL) == NB_OK;
    nb_module *model2 = mlp_new();
    nb_status loaded = saved ? nb_module_load(model2, "runs/mlp.safetensors") : nb_error_code();
    double l1, a1, l2, a2;
    evaluate(model, test_loader, &l1, &a1);
    evaluate(model2, test_loader, &l2, &a2);
    printf("saved and reloaded: accuracy %.2f%% -> %.2f%% (%s)\n", 100 * a1, 100 * a2,
           loaded == NB_OK && a1 == a2 ? "identical" : nb_error_message());
    if (saved) printf("wrote runs/mlp_curves.svg, runs/mlp_curves.csv, runs/mlp.safetensors\n");

    nb_module_free(model2);
    nb_curves_free(curves);
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
