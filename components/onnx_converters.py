"""skl2onnx converters that keep float64 end to end, for the pieces whose stock converter does not.

Read in skl2onnx 1.20.0 (``operator_converters/imputer_op.py``, ``random_forest.py``):

- ``SimpleImputer``: the stock converter emits ONNX-ML ``Imputer`` with ``imputed_value_floats``
  (the medians rounded to float32, and onnxruntime runs ``Imputer`` on float32 only), refuses
  ``add_indicator=True`` (no ``MissingIndicator`` converter), and refuses a string column whose
  ``missing_values`` is NaN. Ours: ``Where(IsNaN(x), median, x)`` in float64, the indicator as
  ``Cast(IsNaN(x)[:, features_])`` concatenated after it (the column order of
  ``SimpleImputer.transform``), and a constant string imputer as identity because the engine
  feeds a missing category as the fill value itself (``mlstack.core.compiled``).
- ``HistGradientBoostingClassifier`` / ``RandomForestClassifier``: the stock converter writes
  ``TreeEnsembleClassifier`` at ai.onnx.ml opset 1, so thresholds become float32 and a value
  between a float64 threshold and its float32 rounding takes the other branch; and it declares
  float64 probabilities that onnxruntime's kernel (float output only) cannot produce. Ours calls
  the same converter at opset 3, moves the float64 arrays into the ``*_as_tensor`` attributes
  opset 3 defines, and casts the float32 probabilities to the type the shape calculator declared (|dp| <= 6e-8).

``register()`` installs them (idempotent); only this process's exports are affected.
"""

from __future__ import annotations

import numpy as np

TREE_DOUBLE_ATTRIBUTES = ("nodes_values", "nodes_hitrates", "class_weights", "base_values")
_registered = False


def _imputer_shape(operator) -> None:
    imputer = operator.raw_operator
    rows = operator.inputs[0].type.shape[0]
    width = sum(variable.type.shape[1] for variable in operator.inputs)
    extra = len(imputer.indicator_.features_) if imputer.add_indicator else 0
    operator.outputs[0].type = operator.inputs[0].type.__class__([rows, width + extra])


def _imputer_convert(scope, operator, container) -> None:
    from skl2onnx.algebra.onnx_ops import OnnxCast, OnnxConcat, OnnxGather, OnnxIdentity, OnnxIsNaN, OnnxWhere
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
    from skl2onnx.proto import onnx_proto

    imputer = operator.raw_operator
    version = container.target_opset
    output = operator.outputs[0].full_name
    names = [variable.full_name for variable in operator.inputs]
    x = names[0] if len(names) == 1 else OnnxConcat(*names, axis=1, op_version=version)
    if isinstance(operator.inputs[0].type, StringTensorType):
        if imputer.strategy != "constant" or imputer.add_indicator:
            raise NotImplementedError("string columns: only SimpleImputer(strategy='constant') is exported")
        OnnxIdentity(x, op_version=version, output_names=[output]).add_to(scope, container)
        return
    if not isinstance(operator.inputs[0].type, DoubleTensorType):
        raise NotImplementedError("numeric columns must be float64 inputs")
    if not (isinstance(imputer.missing_values, float) and np.isnan(imputer.missing_values)):
        raise NotImplementedError(f"missing_values={imputer.missing_values!r}: only NaN is exported")
    statistics = np.asarray(imputer.statistics_, dtype=np.float64)
    if np.isnan(statistics).any():  # sklearn drops all-missing columns; the graph would not
        raise NotImplementedError("a column was entirely missing at fit time")
    missing = OnnxIsNaN(x, op_version=version)
    filled = OnnxWhere(missing, statistics.reshape(1, -1), x, op_version=version)
    if not imputer.add_indicator:
        OnnxIdentity(filled, op_version=version, output_names=[output]).add_to(scope, container)
        return
    if imputer.indicator_.features != "missing-only" or imputer.indicator_.sparse is True:
        raise NotImplementedError("only the dense 'missing-only' indicator is exported")
    columns = np.asarray(imputer.indicator_.features_, dtype=np.int64)
    flags = OnnxCast(
        OnnxGather(missing, columns, axis=1, op_version=version),
        to=onnx_proto.TensorProto.DOUBLE,
        op_version=version,
    )
    OnnxConcat(filled, flags, axis=1, op_version=version, output_names=[output]).add_to(scope, container)


class _DoubleTreeContainer:
    """Delegates to skl2onnx's container; rewrites the TreeEnsembleClassifier node to float64 attributes."""

    def __init__(self, container, scope, probability_type: int):
        self._container, self._scope = container, scope
        self._probability_type = probability_type

    def __getattr__(self, name):
        return getattr(self._container, name)

    def add_node(self, op_type, inputs, outputs, op_domain="", op_version=None, **attrs):
        if op_type != "TreeEnsembleClassifier":
            return self._container.add_node(op_type, inputs, outputs, op_domain, op_version, **attrs)
        from onnx import numpy_helper

        for key in TREE_DOUBLE_ATTRIBUTES:
            if key in attrs:
                values = np.asarray(attrs.pop(key), dtype=np.float64).ravel()
                attrs[f"{key}_as_tensor"] = numpy_helper.from_array(values)
        label, probabilities = outputs
        single = self._scope.get_unique_variable_name("probabilities_float")
        self._container.add_node(op_type, inputs, [label, single], op_domain, 3, **attrs)
        self._container.add_node(
            "Cast",
            [single],
            [probabilities],
            name=self._scope.get_unique_operator_name("CastProbabilities"),
            to=self._probability_type,
        )


def _tree_convert(scope, operator, container) -> None:
    from skl2onnx.common.data_types import DoubleTensorType, guess_proto_type
    from skl2onnx.operator_converters.random_forest import convert_sklearn_random_forest_classifier

    if not isinstance(operator.inputs[0].type, DoubleTensorType):
        raise NotImplementedError("tree ensembles are exported with float64 inputs only")
    # the type the shape calculator declared for the probabilities (float64 for HGB, float32 for RF)
    probability_type = guess_proto_type(operator.outputs[1].type)
    convert_sklearn_random_forest_classifier(
        scope, operator, _DoubleTreeContainer(container, scope, probability_type), op_version=3
    )


def register() -> None:
    """Install the converters above in skl2onnx's registry (once per process)."""
    global _registered
    if _registered:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.shape_calculators.ensemble_shapes import calculate_tree_classifier_output_shapes
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer

    update_registered_converter(
        SimpleImputer, "SklearnSimpleImputer", _imputer_shape, _imputer_convert, overwrite=True
    )
    # the option lists skl2onnx registers for these classes (random_forest.py), unchanged
    hgb_options = {
        "zipmap": [True, False, "columns"],
        "raw_scores": [True, False],
        "output_class_labels": [False, True],
        "nocl": [True, False],
    }
    forest_options = {**hgb_options, "decision_path": [True, False], "decision_leaf": [True, False]}
    for estimator, alias, tree_options in (
        (HistGradientBoostingClassifier, "SklearnHistGradientBoostingClassifier", hgb_options),
        (RandomForestClassifier, "SklearnRandomForestClassifier", forest_options),
    ):
        update_registered_converter(
            estimator,
            alias,
            calculate_tree_classifier_output_shapes,
            _tree_convert,
            options=tree_options,
            overwrite=True,
        )
    _registered = True
