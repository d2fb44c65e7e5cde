import { createRequire } from 'node:module';
import type { Server as NetServer } from 'node:net';
import type * as DcmjsDimse from 'dcmjs-dimse';
import type { Writable } from 'node:stream';
import { SopClass, isDecodableTransferSyntax } from '@cxr/inference';
import type { Logger } from '../log.js';
import { fileMetaHeader } from '../spool/part10.js';
import { SpoolRefusal, type Spool, type SpoolWriter } from '../spool/spool.js';
import type { InstanceRecord } from '../spool/db.js';
import { CStoreStatus } from './status.js';

// dcmjs-dimse is CommonJS with hand-written typings; these are the parts we use.
const require = createRequire(import.meta.url);
const dimse = require('dcmjs-dimse') as typeof DcmjsDimse;
const { Scp, Server, Dataset } = dimse;
// Its own logger prints every PDU to stdout; our log says what matters, without patient data.
dimse.log.setLevel('silent');
const { CEchoResponse, CStoreResponse } = dimse.responses;
const { PresentationContextResult, RejectResult, RejectSource, RejectReason, Status } = dimse.constants;

type ScpInstance = InstanceType<typeof Scp>;
type Association = Parameters<ScpInstance['associationRequested']>[0];
type CStoreRequest = Parameters<ScpInstance['cStoreRequest']>[0];
type CStoreResponse = InstanceType<typeof CStoreResponse>;
type PresentationContext = Parameters<ScpInstance['createStoreWritableStream']>[0];
type DatasetInstance = InstanceType<typeof Dataset>;

/** Storage SOP classes the station's unit sends. */
export const acceptedStorageClasses: ReadonlySet<string> = new Set([
  SopClass.ComputedRadiographyImageStorage,
  SopClass.DigitalXRayImageStorageForPresentation,
  SopClass.DigitalXRayImageStorageForProcessing,
  SopClass.SecondaryCaptureImageStorage,
]);

export interface StoreScpDeps {
  readonly spool: Spool;
  readonly log: Logger;
  /** Called once an instance is durable and recorded (not for duplicates). */
  readonly onStored: (record: InstanceRecord) => void;
}

export interface StoreScpOptions {
  readonly aeTitle: string;
  readonly port: number;
}

/** The C-STORE / C-ECHO server. `listen()` resolves with the bound port. */
export interface StoreScp {
  listen(): Promise<number>;
  close(): Promise<void>;
}

export function createStoreScp(deps: StoreScpDeps, options: StoreScpOptions): StoreScp {
  const { spool, log } = deps;
  // The dataset object dcmjs-dimse hands from the stream hook to cStoreRequest carries our pending file.
  const pendingFiles = new WeakMap<DatasetInstance, { writer: SpoolWriter; refusal?: SpoolRefusal }>();

  class CxrStoreScp extends Scp {
    #association: Association | undefined;
    #spaceRefusal: SpoolRefusal | undefined;

    override associationRequested(association: Association): void {
      this.#association = association;
      const called = association.getCalledAeTitle().trim();
      if (called !== options.aeTitle) {
        log.warn({ calledAe: called, callingAe: association.getCallingAeTitle() }, 'association rejected: called AE title');
        this.sendAssociationReject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CalledAeNotRecognized);
        return;
      }
      for (const { id } of association.getPresentationContexts()) {
        const context = association.getPresentationContext(id);
        const sopClass = context.getAbstractSyntaxUid();
        if (sopClass !== SopClass.Verification && !acceptedStorageClasses.has(sopClass)) {
          context.setResult(PresentationContextResult.RejectAbstractSyntaxNotSupported);
          continue;
        }
        // Keep the unit's own order of preference among the syntaxes we decode.
        const accepted = context.getTransferSyntaxUids().find((ts) => isDecodableTransferSyntax(ts));
        if (accepted) context.setResult(PresentationContextResult.Accept, accepted);
        else context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
      }
      log.info({ callingAe: association.getCallingAeTitle() }, 'association accepted');
      this.sendAssociationAccept();
    }

    override associationReleaseRequested(): void {
      this.sendAssociationReleaseResponse();
    }

    override cEchoRequest(request: Parameters<ScpInstance['cEchoRequest']>[0], callback: (r: InstanceType<typeof CEchoResponse>) => void): void {
      const response = CEchoResponse.fromRequest(request);
      response.setStatus(Status.Success);
      callback(response);
    }

    override createStoreWritableStream(context: PresentationContext, request: CStoreRequest): Writable {
      const header = fileMetaHeader({
        sopClassUid: request.getAffectedSopClassUid(),
        sopInstanceUid: request.getAffectedSopInstanceUid(),
        transferSyntaxUid: context.getAcceptedTransferSyntaxUid() ?? '',
        sourceAeTitle: this.#association?.getCallingAeTitle(),
      });
      const writer = spool.beginWrite(header);
      this.#currentWriter = writer;
      return writer.stream;
    }

    #currentWriter: SpoolWriter | undefined;

    override createDatasetFromStoreWritableStream(_writable: Writable, context: PresentationContext, callback: (dataset: DatasetInstance) => void): void {
      const dataset = new Dataset({}, context.getAcceptedTransferSyntaxUid());
      const writer = this.#currentWriter;
      this.#currentWriter = undefined;
      if (writer) pendingFiles.set(dataset, { writer });
      callback(dataset);
    }

    override cStoreRequest(request: CStoreRequest, callback: (response: CStoreResponse) => void): void {
      const respond = (status: number): void => {
        const response = CStoreResponse.fromRequest(request);
        response.setStatus(status);
        callback(response);
      };
      const pending = pendingFiles.get(request.getDataset() as DatasetInstance);
      if (!pending) {
        respond(CStoreStatus.ProcessingFailure);
        return;
      }
      void this.#store(request, pending.writer)
        .then(respond)
        .catch((err: unknown) => {
          log.error({ err }, 'C-STORE failed');
          respond(CStoreStatus.ProcessingFailure);
        });
    }

    /** Success goes back only after the file is fsynced, renamed, its folder fsynced and its row committed. */
    async #store(request: CStoreRequest, writer: SpoolWriter): Promise<number> {
      try {
        if (this.#spaceRefusal) throw this.#spaceRefusal;
        await spool.checkSpace();
        const written = await writer.finished();
        const outcome = await spool.commit(written, {
          source: 'dicom',
          callingAe: this.#association?.getCallingAeTitle() ?? null,
          sopInstanceUid: request.getAffectedSopInstanceUid(),
        });
        if (outcome.kind === 'stored') deps.onStored(outcome.record);
        return CStoreStatus.Success;
      } catch (err) {
        await writer.abort().catch(() => undefined);
        if (err instanceof SpoolRefusal) {
          log.warn({ reason: err.reason, message: err.message }, 'C-STORE refused');
          return err.reason === 'out-of-resources' ? CStoreStatus.OutOfResources : CStoreStatus.CannotUnderstand;
        }
        throw err;
      }
    }
  }

  const server = new Server(CxrStoreScp);
  server.on('networkError', (err: Error) => log.warn({ err: err.message }, 'DICOM network error'));
  return {
    async listen(): Promise<number> {
      server.listen(options.port);
      // dcmjs-dimse does not report the bound port; read it from its net.Server.
      const netServer = (server as unknown as { server?: NetServer }).server;
      if (netServer && !netServer.listening) await new Promise<void>((resolve, reject) => {
        netServer.once('listening', resolve);
        netServer.once('error', reject);
      });
      const address = netServer?.address();
      return typeof address === 'object' && address ? address.port : options.port;
    },
    async close(): Promise<void> {
      server.close();
    },
  };
}
