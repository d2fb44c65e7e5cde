import { resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { deidentifyFiles } from '../deidentify/deidentify-files.js';
import { errorLine } from '../errors.js';
import { readManifest, writeManifest, type Manifest, type ManifestEntry } from '../manifest.js';
import { wrapDirectory, wrapFile, wrapSettings } from '../wrap/wrap-files.js';
import { defaultWrapOptions, syntaxNames, viewPositions, type SyntaxName, type WrapOptions } from '../wrap/wrap.js';
import { TOOL_VERSION } from '../manifest.js';

export interface CliIo {
  readonly stdout: Writable;
  readonly stderr: Writable;
}

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('expected an integer');
  return n;
}

function number(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number');
  return n;
}

interface WrapFlags {
  bits?: number;
  mono1?: boolean;
  syntax: SyntaxName;
  modality: 'DX' | 'CR';
  windowCenter?: number;
  windowWidth?: number;
  rescaleSlope?: number;
  rescaleIntercept?: number;
  view: string;
  bodyPart: string;
  keepValues?: boolean;
  studyUid?: string;
  seriesUid?: string;
  patientId?: string;
  patientName?: string;
  pixelSpacing?: number;
  burnedInAnnotation: 'yes' | 'no';
}

function withWrapOptions(command: Command): Command {
  return command
    .option('--bits <n>', 'Bits Stored, 6 to 16 (default: the source bit depth); values are scaled to fill the range', integer)
    .option('--keep-values', 'store the source values unchanged instead of scaling them (they must fit in --bits)')
    .option('--mono1', 'MONOCHROME1: store inverted values (air white in the stored data, as many CR units do)')
    .addOption(new Option('--syntax <name>', 'transfer syntax').choices(syntaxNames).default('explicit'))
    .addOption(new Option('--modality <m>', 'DX (Digital X-Ray, for presentation) or CR').choices(['DX', 'CR']).default('DX'))
    .option('--window-center <c>', 'Window Center (default: the whole value range)', number)
    .option('--window-width <w>', 'Window Width (default: the whole value range)', number)
    .option('--rescale-slope <s>', 'Rescale Slope (CR only: DX requires 1)', number)
    .option('--rescale-intercept <b>', 'Rescale Intercept (CR only: DX requires 0)', number)
    .addOption(new Option('--view <position>', 'View Position').choices(viewPositions).default('PA'))
    .option('--body-part <part>', 'Body Part Examined', 'CHEST')
    .option('--study-uid <uid>', 'put the image in this study (default: a new study per image)')
    .option('--series-uid <uid>', 'put the image in this series (default: a new series per image)')
    .option('--patient-id <id>', 'Patient ID (default: empty)')
    .option('--patient-name <name>', "Patient's Name, DICOM PN form FAMILY^GIVEN (default: empty)")
    .option('--pixel-spacing <mm>', 'Imager Pixel Spacing in mm (DX needs one; default a nominal 0.143, with a warning)', number)
    .addOption(
      new Option('--burned-in-annotation <yes|no>', 'whether the pixels show text (default yes: nobody has looked)').choices(['yes', 'no']).default('yes'),
    );
}

function wrapOptionsOf(flags: WrapFlags): WrapOptions {
  return {
    ...defaultWrapOptions,
    modality: flags.modality,
    bits: flags.bits,
    mapping: flags.keepValues ? 'keep' : 'scale',
    monochrome1: flags.mono1 ?? false,
    syntax: flags.syntax,
    windowCenter: flags.windowCenter,
    windowWidth: flags.windowWidth,
    rescaleSlope: flags.rescaleSlope,
    rescaleIntercept: flags.rescaleIntercept,
    viewPosition: flags.view,
    bodyPart: flags.bodyPart.toUpperCase(),
    studyInstanceUid: flags.studyUid,
    seriesInstanceUid: flags.seriesUid,
    patientId: flags.patientId,
    patientName: flags.patientName,
    pixelSpacingMm: flags.pixelSpacing,
    burnedInAnnotation: flags.burnedInAnnotation === 'no' ? 'NO' : 'YES',
  };
}

function line(stream: Writable, text: string): void {
  stream.write(`${text}\n`);
}

function summary(entry: ManifestEntry): string {
  return `${entry.output}: ${entry.transferSyntax}, ${entry.bytes} bytes, sha256 ${entry.sha256.slice(0, 16)}…`;
}

/** Builds the `cxr-datasets` program. Returns the exit code instead of exiting, so tests can run it in process. */
export async function main(argv: readonly string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let exitCode = 0;
  const fail = (err: unknown): void => {
    const { code, message } = errorLine(err);
    line(io.stderr, `cxr-datasets: ${code}: ${message}`);
    exitCode = code === 'CXR_USAGE' ? 2 : 1;
  };
  const program = new Command()
    .name('cxr-datasets')
    .description('Make and check data: wrap PNG/JPEG into DICOM, de-identify DICOM, with a manifest of what was made.')
    .version(TOOL_VERSION)
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });

  withWrapOptions(
    program
      .command('wrap')
      .description('Wrap one PNG or JPEG (8 or 16 bit; colour is made grey) into a DICOM Part 10 file.')
      .argument('<image>', 'PNG or JPEG file')
      .requiredOption('-o, --out <file>', 'the DICOM file to write'),
  )
    .option('--manifest <file>', 'add an entry for this file to a manifest (made if missing)')
    .option('--json', 'print the manifest entry as JSON')
    .addHelpText('after', '\nExample:\n  cxr-datasets wrap ../shared/eval/nih-chestxray14-sample/00000129_000.png --out /tmp/x.dcm --bits 12 --mono1 --syntax jpeg-ls')
    .action(async (image: string, flags: WrapFlags & { out: string; manifest?: string; json?: boolean }) => {
      try {
        const options = wrapOptionsOf(flags);
        const manifestDir = flags.manifest === undefined ? undefined : resolve(flags.manifest, '..');
        const entry = await wrapFile(image, flags.out, options, manifestDir);
        if (flags.manifest !== undefined) {
          const existing = await readManifest(flags.manifest);
          const manifest: Manifest = {
            schemaVersion: 1,
            tool: 'cxr-datasets',
            toolVersion: TOOL_VERSION,
            command: 'wrap',
            createdAt: new Date().toISOString(),
            settings: wrapSettings(options),
            failed: existing?.failed ?? [],
            files: [...(existing?.files ?? []).filter((f) => f.output !== entry.output), entry],
          };
          await writeManifest(flags.manifest, manifest);
        }
        for (const warning of entry.warnings) line(io.stderr, `warning: ${warning}`);
        line(io.stdout, flags.json ? JSON.stringify(entry) : summary(entry));
      } catch (err) {
        fail(err);
      }
    });

  withWrapOptions(
    program
      .command('wrap-dir')
      .description('Wrap every PNG/JPEG under a folder (relative paths kept, .dcm), with manifest.json in the output folder.')
      .argument('<folder>', 'folder of PNG/JPEG files')
      .requiredOption('-o, --out <folder>', 'output folder'),
  )
    .addHelpText('after', '\nExample:\n  cxr-datasets wrap-dir ../shared/eval/nih-chestxray14-sample --out /tmp/nih-dicom --syntax rle --burned-in-annotation no')
    .action(async (folder: string, flags: WrapFlags & { out: string }) => {
      try {
        const manifest = await wrapDirectory(folder, flags.out, wrapOptionsOf(flags));
        await writeManifest(resolve(flags.out, 'manifest.json'), manifest);
        for (const f of manifest.failed) line(io.stderr, `${f.source}: ${f.error.code}: ${f.error.message}`);
        line(io.stdout, `${manifest.files.length} wrapped, ${manifest.failed.length} failed: ${resolve(flags.out, 'manifest.json')}`);
        if (manifest.files.length === 0 && manifest.failed.length > 0) exitCode = 1;
      } catch (err) {
        fail(err);
      }
    });

  program
    .command('deidentify')
    .description('De-identify DICOM files by the PS3.15 Basic Profile (dates shifted, UIDs mapped) into a folder, with manifest.json.')
    .argument('<inputs...>', 'DICOM files or folders (searched recursively)')
    .requiredOption('-o, --out <folder>', 'output folder: <new SOP Instance UID>.dcm and manifest.json')
    .option('--shift-days <n>', 'days added to every date (default: 1 to 3650 days back, from the key)', integer)
    .option('--salt <secret>', 'key for the UID and patient mapping: the same salt maps the same way in every run (default: random, this run only)')
    .option('--keep-patient-characteristics', "keep Patient's Sex, Age, Size and Weight")
    .option('--json', 'print the manifest as JSON')
    .addHelpText('after', '\nExample:\n  cxr-datasets deidentify ../shared/dicom --out /tmp/deid --shift-days -400')
    .action(async (inputs: string[], flags: { out: string; shiftDays?: number; salt?: string; keepPatientCharacteristics?: boolean; json?: boolean }) => {
      try {
        const manifest = await deidentifyFiles(inputs, flags.out, {
          salt: flags.salt,
          shiftDays: flags.shiftDays,
          keepPatientCharacteristics: flags.keepPatientCharacteristics,
        });
        for (const f of manifest.failed) line(io.stderr, `${f.source}: ${f.error.code}: ${f.error.message}`);
        if (flags.json) line(io.stdout, JSON.stringify(manifest));
        else {
          line(
            io.stdout,
            `${manifest.files.length} de-identified, ${manifest.needsReview?.length ?? 0} need review of their pixels, ${manifest.failed.length} failed: ${resolve(flags.out, 'manifest.json')}`,
          );
        }
        if (manifest.files.length === 0 && manifest.failed.length > 0) exitCode = 1;
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
