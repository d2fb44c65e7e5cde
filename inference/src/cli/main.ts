import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { readPackageVersion } from './package-version.js';
import { errorLine, writeLine, type CliIo } from './output.js';
import { inferCommand } from './commands/infer.js';
import { infoCommand } from './commands/info.js';
import { preprocessCommand } from './commands/preprocess.js';
import { evalCommand } from './commands/eval.js';
import { calibrateCommand } from './commands/calibrate.js';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError('expected an integer from 1 to 64');
  return n;
}

function rate(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !(n > 0 && n <= 1)) throw new InvalidArgumentError('expected a number in (0, 1], e.g. 0.95');
  return n;
}

function nonNegative(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number >= 0');
  return n;
}

/** Builds the `cxr` program. Returns the exit code instead of exiting, so tests can run it in process. */
export async function main(argv: readonly string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let exitCode = 0;
  const fail = (err: unknown): void => {
    const { code, message } = errorLine(err);
    writeLine(io.stderr, `cxr: ${code}: ${message}`);
    // A usage mistake found by a command (a bad --thresholds file, an unknown --score code) exits like one commander finds.
    exitCode = code === 'CXR_USAGE' ? 2 : 1;
  };
  const program = new Command()
    .name('cxr')
    .version(readPackageVersion(new URL('../../package.json', import.meta.url)), '-V, --version', 'print the version of cxr')
    .description('Chest X-ray triage: DICOM, PNG or JPEG to AI findings, exactly by the model manifest v1 contract.')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });

  program
    .command('infer')
    .description('Run a model on one or more images; one result per file (one JSON object per line with --json).')
    .argument('<files...>', 'DICOM, PNG or JPEG files')
    .requiredOption('-m, --model <dir>', 'model folder (model file + manifest.json)')
    .option('--json', 'print one JSON object per line per file')
    .option('--force', 'run the model even on images outside its applicability (the result stays "not applicable")')
    .option('--threads <n>', 'threads for the model and the JPEG 2000 decoder (default 2)', positiveInt)
    .option('--thresholds <file>', 'JSON of per-label thresholds overriding the manifest, e.g. {"pneumothorax": 0.4}')
    .addHelpText('after', '\nExample:\n  cxr infer ../shared/dicom/cr_chest_pa_RG1_J2KI.dcm --model ../shared/models/densenet121-cxr18-random --json')
    .action(async (files: string[], opts: { model: string; json?: boolean; force?: boolean; threads?: number; thresholds?: string }) => {
      try {
        const { failed, total } = await inferCommand(files, opts, io);
        // A batch succeeds when at least one file did; per-file errors are in the output.
        if (failed === total) exitCode = 1;
      } catch (err) {
        fail(err);
      }
    });

  program
    .command('preprocess')
    .description("Write a model's input tensor for one image: float32, C x H x W, little endian.")
    .argument('<file>', 'DICOM, PNG or JPEG file')
    .requiredOption('-m, --model <dir>', 'model folder whose manifest gives the preprocessing')
    .requiredOption('-o, --out <file>', 'output .f32 file')
    .addHelpText('after', '\nExample:\n  cxr preprocess ../shared/dicom/cr_chest_pa_RG1_J2KI.dcm --model ../shared/models/densenet121-cxr18-random --out /tmp/x.f32')
    .action(async (file: string, opts: { model: string; out: string }) => {
      try {
        const { shape, bytes } = await preprocessCommand(file, opts);
        writeLine(io.stderr, `wrote ${opts.out}: float32 [${shape.join(', ')}], ${bytes} bytes`);
      } catch (err) {
        fail(err);
      }
    });

  program
    .command('info')
    .description('Print the DICOM header fields the pipeline uses (no patient identifiers).')
    .argument('<file>', 'DICOM file')
    .option('--json', 'print JSON')
    .action(async (file: string, opts: { json?: boolean }) => {
      try {
        const info = await infoCommand(file);
        if (opts.json) writeLine(io.stdout, JSON.stringify(info));
        else for (const [key, value] of Object.entries(info)) writeLine(io.stdout, `${key.padEnd(26)} ${JSON.stringify(value)}`);
      } catch (err) {
        fail(err);
      }
    });

  program
    .command('eval')
    .description(
      'Evaluate a model on a labelled set: ROC AUC with a 95% CI (DeLong), sensitivity and specificity at the thresholds, confusion counts; unreadable images listed.',
    )
    .requiredOption('-m, --model <dir>', 'model folder (model file + manifest.json)')
    .requiredOption('-l, --labels <csv>', 'CSV with an image column (paths relative to the CSV) and 0/1 truth columns')
    .option('--truth <column>', 'the 0/1 truth column to evaluate against')
    .option('--score <codes>', 'the score: a label code, or codes joined by + whose probabilities are summed (CODE[+CODE...])')
    .option('--image-column <name>', 'the CSV column naming the image', 'image')
    .option('--threshold <x>', 'call the summed score positive at or above x (default: positive when any of its labels reaches its own threshold)', nonNegative)
    .option('--thresholds <file>', 'per-label thresholds overriding the manifest: {"code": x} or a cxr calibrate file')
    .option('--include-not-applicable', 'score images outside the model\'s applicability too (default: list them apart, out of the metrics)')
    .option('--threads <n>', 'threads for the model and the JPEG 2000 decoder (default 2)', positiveInt)
    .option('--json', 'print one JSON object')
    .option('-o, --out <dir>', 'write report.json (with per-image scores and the ROC points) and roc.svg there')
    .addHelpText(
      'after',
      '\nWithout --truth and --score, every label of the manifest with a truth column of the same name (case ignored) is evaluated.' +
        '\n\nExample:\n  cxr eval --model ../shared/models/squeezenet-pneumonia-peds --labels ../shared/eval/kermany-pediatric-test/labels.csv \\\n' +
        '    --truth pneumonia --score bacterial_pneumonia+viral_pneumonia --json --out /tmp/kermany-eval',
    )
    .action(async (opts: Parameters<typeof evalCommand>[0]) => {
      try {
        exitCode = await evalCommand(opts, io);
      } catch (err) {
        fail(err);
      }
    });

  program
    .command('calibrate')
    .description('Propose per-label thresholds reaching a target sensitivity or specificity on a labelled set, with the operating point and its 95% CI (Wilson).')
    .requiredOption('-m, --model <dir>', 'model folder (model file + manifest.json)')
    .requiredOption('-l, --labels <csv>', 'CSV with an image column (paths relative to the CSV) and 0/1 truth columns')
    .requiredOption('-o, --out <file>', 'the thresholds file to write (for cxr infer --thresholds and the registry)')
    .option('--target-sensitivity <s>', 'the highest threshold whose sensitivity on the set is at least s', rate)
    .option('--target-specificity <s>', 'the lowest threshold whose specificity on the set is at least s', rate)
    .option('--truth <column>', 'the 0/1 truth column')
    .option('--score <codes>', 'a label code, or codes joined by + that then share one threshold (positive when any reaches it)')
    .option('--image-column <name>', 'the CSV column naming the image', 'image')
    .option('--include-not-applicable', 'use images outside the model\'s applicability too')
    .option('--threads <n>', 'threads for the model and the JPEG 2000 decoder (default 2)', positiveInt)
    .option('--json', 'print the thresholds file as one JSON object')
    .addHelpText(
      'after',
      '\nExample:\n  cxr calibrate --model ../shared/models/squeezenet-pneumonia-peds --labels ../shared/eval/kermany-pediatric-test/labels.csv \\\n' +
        '    --truth pneumonia --score bacterial_pneumonia+viral_pneumonia --target-sensitivity 0.95 --out thresholds.json',
    )
    .action(async (opts: Parameters<typeof calibrateCommand>[0]) => {
      try {
        await calibrateCommand(opts, io);
      } catch (err) {
        fail(err);
      }
    });

  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; usage mistakes exit 2, like most Unix tools.
      return err.exitCode === 0 ? 0 : 2;
    }
    fail(err);
  }
  return exitCode;
}
