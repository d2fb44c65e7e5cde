#!/usr/bin/env bash
# Sets up and starts the system on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
model="${CXR_MODEL:-../shared/models/densenet121-cxr18-random}"
echo "== cxr infer on the shared chest radiographs with $model"
npx cxr infer ../shared/dicom/cr_chest_pa_RG1_J2KI.dcm ../shared/dicom/cr_chest_CR-MONO1-10-chest.dcm \
  ../shared/dicom/dx_chest_nih_secondary_capture.dcm ../shared/dicom/cr_hip_RG2_JLSL.dcm --model "$model"
