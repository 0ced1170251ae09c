"""The outlier detector's scores: their auto choices, state checks and ONNX graph."""
