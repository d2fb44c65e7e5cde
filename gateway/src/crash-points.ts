/**
 * The gateway's named crash points (crashPoint() from '@cxr/inference'): one after each durable step whose answer
 * has not been given yet. A process started with CXR_CRASH_POINT=NAME kills itself there; never set in production.
 * gateway/test/crash-points.test.ts crashes a real gateway at every point of this object, restarts it, replays what
 * a station or a radiologist would replay and checks that nothing acknowledged was lost or doubled.
 */
export const GatewayCrashPoint = {
  /** the consult record is in the store, the consult not yet on the queue */
  consultStored: 'gateway.consult.stored-not-queued',
  /** the signed report is in the store, its consult still on the queue */
  reportStored: 'gateway.report.stored-still-queued',
  /** the claim is in Redis and in the record (claim.json), the radiologist not yet answered */
  claimRecorded: 'gateway.claim.recorded-not-answered',
  /** a chunk of a resumable upload is stored, not yet acknowledged */
  uploadChunkStored: 'gateway.upload.chunk-stored-not-acknowledged',
  /** the joined instance is stored, its chunks not yet removed */
  uploadJoined: 'gateway.upload.joined-chunks-not-removed',
  /** an AI result (result.json) is stored, the station not yet answered */
  instanceResultStored: 'gateway.instance.result-stored-not-answered',
  /** an instance file (DICOM, preview or heatmap) is stored, the station not yet answered */
  instanceFileStored: 'gateway.instance.file-stored-not-answered',
} as const;

export type GatewayCrashPointName = (typeof GatewayCrashPoint)[keyof typeof GatewayCrashPoint];
