import { createRequire } from 'node:module';
import type { Server as NetServer, Socket } from 'node:net';
import type * as DcmjsDimse from 'dcmjs-dimse';
import { Writable } from 'node:stream';
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
const { AbortReason, AbortSource, PresentationContextResult, RejectResult, RejectSource, RejectReason, Status } = dimse.constants;

type ScpInstance = InstanceType<typeof Scp>;
type Association = Parameters<ScpInstance['associationRequested']>[0];
type CStoreRequest = Parameters<ScpInstance['cStoreRequest']>[0];
type CStoreResponse = InstanceType<typeof CStoreResponse>;
type PresentationContext = Parameters<ScpInstance['createStoreWritableStream']>[0];
type DatasetInstance = InstanceType<typeof Dataset>;
type ScpOptions = ConstructorParameters<typeof Scp>[1];

/** Why a transfer ended before its last byte. */
type CutShort = 'aborted' | 'connection closed' | 'stalled' | 'network error';

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

/** A device allowed to send: its calling AE title and, when given, the address it must come from. */
export interface AllowedCaller {
  readonly aeTitle: string;
  readonly address?: string;
}

export interface StoreScpOptions {
  readonly aeTitle: string;
  readonly port: number;
  /**
   * Who may associate (C-STORE and C-ECHO). Empty or absent: anyone who reaches the port, as a unit that cannot be
   * told apart is still better than no images (the agent warns at start).
   */
  readonly allowedCallers?: readonly AllowedCaller[];
  /** A sender silent this long (not one byte) has its association aborted and any partial file removed. Default 60 s. */
  readonly idleTimeoutMs?: number;
}

export const defaultIdleTimeoutMs = 60_000;

/** An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d. */
function plainAddress(address: string | undefined): string | undefined {
  return address?.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/iu, '$1');
}

function sameAddress(allowed: string, remote: string | undefined): boolean {
  const peer = plainAddress(remote);
  return peer !== undefined && plainAddress(allowed)?.toLowerCase() === peer.toLowerCase();
}

/** A writable that keeps nothing: what still arrives for an association that has ended. */
const discard = (): Writable => new Writable({ write: (_chunk, _enc, callback) => callback() });

/** The C-STORE / C-ECHO server. `listen()` resolves with the bound port. */
export interface StoreScp {
  listen(): Promise<number>;
  close(): Promise<void>;
}

export function createStoreScp(deps: StoreScpDeps, options: StoreScpOptions): StoreScp {
  const { spool, log } = deps;
  // The dataset object dcmjs-dimse hands from the stream hook to cStoreRequest carries our pending file.
  const pendingFiles = new WeakMap<DatasetInstance, { writer: SpoolWriter; refusal?: SpoolRefusal }>();

  const idleTimeoutMs = options.idleTimeoutMs ?? defaultIdleTimeoutMs;
  const allowed = options.allowedCallers ?? [];
  const callerAllowed = (callingAe: string, remoteAddress: string | undefined): boolean =>
    allowed.length === 0 || allowed.some((c) => c.aeTitle === callingAe && (c.address === undefined || sameAddress(c.address, remoteAddress)));

  class CxrStoreScp extends Scp {
    #association: Association | undefined;
    #spaceRefusal: SpoolRefusal | undefined;
    readonly #socket: Socket;
    #ended = false;
    /**
     * The file of the dataset still arriving. dcmjs-dimse never tells the stream when an association dies
     * mid-dataset (A-ABORT, a closed or failed socket, a stalled sender), so the SCP closes and deletes it itself.
     */
    #receiving: SpoolWriter | undefined;

    constructor(socket: Socket, scpOptions?: ScpOptions) {
      super(socket, scpOptions);
      this.#socket = socket;
      // Before dcmjs-dimse's own handler, which only reports a network error and half-closes the socket.
      socket.prependListener('timeout', () => this.#cutShort('stalled', { sendAbort: true }));
      socket.once('close', () => this.#cutShort('connection closed'));
      // Its PDU timer (no whole PDU for pduTimeout: a trickling sender) has sent its A-ABORT already.
      this.on('networkError', (err: Error) => this.#cutShort(/timeout/iu.test(err.message) ? 'stalled' : 'network error'));
    }

    /** Ends the association for good: the partial file (if any) is closed and deleted, nothing recorded or acknowledged. */
    #cutShort(reason: CutShort, action: { sendAbort?: boolean } = {}): void {
      const firstTime = !this.#ended;
      this.#ended = true;
      const writer = this.#receiving;
      this.#receiving = undefined;
      if (writer) {
        log.warn({ reason, callingAe: this.#association?.getCallingAeTitle() }, 'C-STORE cut short: partial file removed, nothing acknowledged');
        void writer.abort().catch((err: unknown) => log.error({ err }, 'could not remove a partial file'));
      } else if (firstTime && reason === 'stalled') {
        log.info({ idleTimeoutMs, callingAe: this.#association?.getCallingAeTitle() }, 'idle association aborted');
      }
      if (!firstTime || this.#socket.destroyed) return;
      // The provider aborts (PS3.8). The sender may not be reading: the socket goes in any case.
      if (action.sendAbort) this.sendAbort(AbortSource.ServiceProvider, AbortReason.NotSpecified);
      if (reason === 'aborted') this.#socket.destroy();
      else {
        this.#socket.end();
        setTimeout(() => this.#socket.destroy(), 2000).unref();
      }
    }

    override abort(): void {
      this.#cutShort('aborted');
    }

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
      if (!callerAllowed(association.getCallingAeTitle().trim(), this.#socket.remoteAddress)) {
        log.warn({ callingAe: association.getCallingAeTitle().trim(), address: plainAddress(this.#socket.remoteAddress) }, 'association rejected: calling AE title not allowed (--calling-ae)');
        this.sendAssociationReject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CallingAeNotRecognized);
        return;
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
      if (this.#ended) return discard();
      const header = fileMetaHeader({
        sopClassUid: request.getAffectedSopClassUid(),
        sopInstanceUid: request.getAffectedSopInstanceUid(),
        transferSyntaxUid: context.getAcceptedTransferSyntaxUid() ?? '',
        sourceAeTitle: this.#association?.getCallingAeTitle(),
      });
      const writer = spool.beginWrite(header);
      this.#receiving = writer;
      return writer.stream;
    }

    /** The last fragment is in: the file is complete and goes on to be stored, whatever happens to the socket now. */
    override createDatasetFromStoreWritableStream(_writable: Writable, context: PresentationContext, callback: (dataset: DatasetInstance) => void): void {
      const dataset = new Dataset({}, context.getAcceptedTransferSyntaxUid());
      const writer = this.#receiving;
      this.#receiving = undefined;
      if (writer) pendingFiles.set(dataset, { writer });
      callback(dataset);
    }

    override cStoreRequest(request: CStoreRequest, callback: (response: CStoreResponse) => void): void {
      const respond = (status: number): void => {
        if (!this.#ended) this.#socket.setTimeout(idleTimeoutMs);
        const response = CStoreResponse.fromRequest(request);
        response.setStatus(status);
        callback(response);
      };
      const pending = pendingFiles.get(request.getDataset() as DatasetInstance);
      if (!pending) {
        respond(CStoreStatus.ProcessingFailure);
        return;
      }
      // The sender waits for our answer now: storing (and comparing with a stored version) is not the sender stalling.
      this.#socket.setTimeout(0);
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
      // dcmjs-dimse's timers: connectTimeout is the socket's idle timeout (not one byte for that long), pduTimeout the
      // time without a whole PDU (a sender trickling bytes). On their own they half-close the socket and leave the
      // dataset's stream open: #cutShort does the rest. (Its associationTimeout never fires on the server side.)
      server.listen(options.port, { connectTimeout: idleTimeoutMs, pduTimeout: 2 * idleTimeoutMs });
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
