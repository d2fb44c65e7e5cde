export { readLabelledSet, truthOf, columnForCode, type LabelledRow, type LabelledSet } from './labelled-set.js';
export { scoreSet, type ScoredImage, type ScoredSet, type FailedImage, type NotApplicableImage, type ScoreSetOptions } from './score-set.js';
export { resolveScores, scoreValues, truthValues, decisionRule, decisions, type ScoreSpec, type ScoreSelection, type DecisionRule } from './scores.js';
export { evaluateScore, runSummary, type ScoreReport, type RunSummary, type EvaluationContext } from './evaluate.js';
export { calibrateScore, thresholdForTarget, decisionValues, type CalibrationTarget } from './calibrate.js';
export { aucDeLong, midranks, confusion, operatingPoint, proportion, rocCurve, wilsonInterval, z95, type AucResult, type Confusion, type Interval, type OperatingPoint, type RocCurve } from './metrics.js';
export { rocSvg, type RocPlot, type RocPlotCurve } from './roc-svg.js';
export { evaluateModel, calibrateModel, type EvaluateOptions, type CalibrateOptions, type Evaluation, type ImageScores, type LabelledRunOptions } from './run.js';
