"""Figures and widget explorers, one module per chapter that has them.

    widgets    explorer() and the lazy pyplot import                     every chapter with figures
    ch01       storage diagrams, the stride explorer, broadcasting       01_tensors
    op_chain   the reader of typed view-op chains ("[:, 1:].t()")        01_tensors (stride explorer)
    ct_views   CT slices under a display window, the slicer              01_tensors, the CT chapters
    ch02       the gradient-descent explorer                             02_autograd
    descent    gd_run, the trainer behind it                             02_autograd
    ch03       the neuron composer, the digit explorer                   03_nn
    ch04       kernels on images, CAM overlays                           04_cnns
    ch05       the LM batch layout, recurrent cell diagrams              05_nlp
    ch06       Spearman dendrogram, waterfall, draw_tree, two explorers  06_tabular
    ch07       the spreadsheet heat-maps, neighbours, the recommendation explorer   07_collab
    ch08       HU and windows, CT views, mini-LUNA series/crops/geometry, the CT explorer   08_ct
    ch09       train/eval calls, graphs, latency/batch/size bars, the inference playground   09_deploy
    thresholds F-score heat-maps, TensorBoard curves, PR/ROC, the threshold explorer   08_ct
    lm_stream  lm_layout, where a LM loader puts each token              05_nlp

Every public name is re-exported here, so a notebook writes `from course_utils import plots` and
`plots.draw_storage(...)`, or `from course_utils.plots import gd_explorer`. A chapter's module may
import an earlier chapter's, never a later one's. Nothing draws or imports pyplot or ipywidgets at
import time.
"""

from course_utils.plots import (ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch09, ct_views, descent, lm_stream,
                                op_chain, thresholds, widgets)
from course_utils.plots.ch01 import (
    describe_view,
    draw_boxed_vs_unboxed,
    draw_broadcast_shapes,
    draw_expand,
    draw_storage,
    element_addresses,
    show_view,
    storage_elements,
    stride_explorer,
)
from course_utils.plots.ch02 import draw_gd_explorer, gd_explorer
from course_utils.plots.ch03 import (
    NEURON_DEFAULTS,
    digit_explorer,
    draw_digit_explorer,
    draw_neuron_composer,
    neuron_composer,
    neuron_sum,
)
from course_utils.plots.ch04 import (
    KERNELS,
    apply_kernel_map,
    cam_explorer,
    draw_cam,
    draw_cam_explorer,
    draw_kernel,
    draw_kernel_explorer,
    kernel_explorer,
    parse_kernel,
)
from course_utils.plots.ch05 import draw_lm_batches, draw_recurrent_cells
from course_utils.plots.ch06 import (
    cluster_columns,
    draw_house,
    draw_leaf_size,
    draw_tree,
    house_explorer,
    leaf_size_explorer,
    spearman_linkage,
    waterfall,
    waterfall_steps,
)
from course_utils.plots.ch07 import (
    cosine_neighbours,
    draw_neighbours,
    draw_recommendations,
    draw_spreadsheet,
    recommendation_explorer,
    recommendation_scores,
)
from course_utils.plots.ch08 import (
    LUNA_COUNTS,
    TISSUE_LADDER,
    WINDOWS,
    ct_explorer,
    draw_aspect_comparison,
    draw_augmentations,
    draw_class_balance,
    draw_crop_gallery,
    draw_ct_explorer,
    draw_grouping,
    draw_hu_histogram,
    draw_mask_overlay,
    draw_segmentation_overlay,
    draw_series_with_candidates,
    draw_stored_vs_hu,
    draw_windows,
    draw_xyz_irc,
    gallery_crops,
)
from course_utils.plots.ch09 import (
    draw_playground,
    inference_playground,
    playground_predict,
    plot_accuracy_bars,
    plot_batch_sizes,
    plot_confidence_histograms,
    plot_graphs_side_by_side,
    plot_latency_bars,
    plot_model_sizes,
    plot_probabilities,
    plot_train_vs_eval,
)
from course_utils.plots.ct_views import ct_slicer, draw_ct_slice, show_ct_planes
from course_utils.plots.descent import GD_OPTIMIZERS, gd_run
from course_utils.plots.lm_stream import lm_layout
from course_utils.plots.op_chain import apply_ops
from course_utils.plots.thresholds import (
    draw_confusion,
    draw_f1_vs_threshold,
    draw_f_heatmaps,
    draw_pr_curve,
    draw_roc,
    draw_threshold_explorer,
    draw_training_scalars,
    threshold_explorer,
)
from course_utils.plots.widgets import STATIC_TEXT, explorer, explorer_box, pyplot

__all__ = [
    *widgets.__all__,
    *ch01.__all__,
    *op_chain.__all__,
    *ct_views.__all__,
    *ch02.__all__,
    *descent.__all__,
    *ch03.__all__,
    *ch04.__all__,
    *ch05.__all__,
    *ch06.__all__,
    *ch07.__all__,
    *ch08.__all__,
    *ch09.__all__,
    *thresholds.__all__,
    *lm_stream.__all__,
]
