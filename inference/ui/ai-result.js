// The AI result's parts that the station's page and the radiologist's page show alike: the head (the priority, a
// notice when applicability could not be checked or the model was forced, the summary line), the "not applicable"
// notice, each finding and the model's line. With their words, Vietnamese first (terms from shared/i18n-vi.md),
// which each page spreads into its own before its own words; `notApplicableHint` is each page's own (what to do
// differs).
import { fmtPercent, h } from '/shared/page-kit.js';

export const aiResultWords = {
  vi: {
    notVerifiedTitle: 'Chưa kiểm tra được ảnh có phù hợp với AI không',
    notVerifiedBody: 'Thông tin kèm ảnh (DICOM) không ghi {missing}, nên AI không kiểm tra được đây có phải phim ngực thẳng (PA/AP) hay không. Kết quả chỉ có giá trị với phim ngực thẳng.',
    forced: 'AI được chạy ép trên ảnh ngoài phạm vi áp dụng — chỉ để tham khảo.',
    noneAbove: 'không thấy dấu hiệu vượt ngưỡng',
    noFindingHint: 'AI không xác nhận phim bình thường',
    positives: '{n} dấu hiệu nghi ngờ',
    noteModality: 'loại máy chụp',
    noteBodyPart: 'vùng chụp',
    noteView: 'tư thế chụp',
    notApplicable: 'AI không áp dụng cho ảnh này',
    reason: 'Lý do',
    threshold: 'ngưỡng',
    above: 'trên ngưỡng',
    below: 'dưới ngưỡng',
    modelLine: 'Mô hình {name}, phiên bản {version}',
  },
  en: {
    notVerifiedTitle: 'Could not check that the AI applies to this image',
    notVerifiedBody: 'The image header (DICOM) has no {missing}, so the AI could not check that this is a frontal chest film (PA/AP). The result is only valid for a frontal chest film.',
    forced: 'The AI was forced to run on an image outside its scope — for reference only.',
    noneAbove: 'no finding above threshold',
    noFindingHint: 'The AI does not certify a normal film',
    positives: '{n} suspected findings',
    positives_1: '1 suspected finding',
    noteModality: 'modality',
    noteBodyPart: 'body part',
    noteView: 'view position',
    notApplicable: 'AI not applicable to this image',
    reason: 'Reason',
    threshold: 'threshold',
    above: 'above threshold',
    below: 'below threshold',
    modelLine: 'Model {name}, version {version}',
  },
};

/** Applicability notes ("body part not in the header") as the names of what is missing; unknown notes as they are. */
export function missingFromNotes(notes, t) {
  return (notes ?? []).map((note) => {
    const n = String(note).toLowerCase();
    if (n.includes('body part')) return t('noteBodyPart');
    if (n.includes('view')) return t('noteView');
    if (n.includes('modality')) return t('noteModality');
    return String(note);
  });
}

/**
 * The elements above the findings of an applicable result: "<priorityLabel>: <badge>", the notices, the summary.
 * `badge(priority)` is the page's priority badge.
 */
export function resultHeadParts(result, { t, tn, badge, priorityLabel }) {
  const parts = [h('p', { class: 'result-priority' }, h('span', {}, `${priorityLabel}:`), badge(result.priority))];
  if (result.applicability && result.applicability.verified === false) {
    const missing = missingFromNotes(result.applicability.notes, t);
    parts.push(
      h(
        'div',
        { class: 'notice notice-unverified', role: 'note' },
        h('p', { class: 'notice-title' }, t('notVerifiedTitle')),
        h('p', {}, t('notVerifiedBody', { missing: missing.join(', ') || '—' })),
      ),
    );
  }
  if (result.forced) parts.push(h('div', { class: 'notice notice-unverified' }, h('p', {}, t('forced'))));
  const positives = result.findings.filter((f) => f.positive).length;
  parts.push(
    positives > 0
      ? h('p', { class: 'result-summary has-positives' }, tn('positives', positives))
      : h('div', { class: 'result-summary none' }, h('p', {}, t('noneAbove')), h('p', { class: 'hint' }, t('noFindingHint'))),
  );
  return parts;
}

/** The notice for a result outside the model's applicability: why (in the page's language when the server has it). */
export function notApplicableNotice(result, { t, lang }) {
  const reason = lang === 'vi' ? (result.applicability?.reasonVi ?? result.reason) : (result.reason ?? result.applicability?.reasonVi);
  return h(
    'div',
    { class: 'notice notice-na' },
    h('p', { class: 'notice-title' }, t('notApplicable')),
    reason ? h('p', { class: 'na-reason' }, `${t('reason')}: ${reason}`) : null,
    h('p', { class: 'hint' }, t('notApplicableHint')),
  );
}

/** "Model <name>, version <version> · sha256 <first 12>" (the full digest as its title), or null without a model. */
export function modelLine(result, { t }) {
  if (!result.model) return null;
  return h(
    'p',
    { class: 'model-line' },
    t('modelLine', { name: result.model.name, version: result.model.version }),
    result.model.sha256 ? h('span', { class: 'sha', title: result.model.sha256 }, ` · sha256 ${result.model.sha256.slice(0, 12)}`) : null,
  );
}

/** A finding's name in the page's language, the other language's or its code when the model gave none. */
export function findingName(f, lang) {
  return (lang === 'vi' ? f.displayVi || f.display : f.display || f.displayVi) || f.code;
}

/**
 * One finding: "<name> — <percent> (threshold <t>)", a bar with the threshold marked, above or below, and the
 * priority it raises (the pages' words stat, urgent). `extras` follow (the radiologist's agree/disagree).
 */
export function findingItem(f, { t, lang, extras = [] }) {
  const pct = Math.max(0, Math.min(100, f.probability * 100));
  return h(
    'li',
    { class: `finding ${f.positive ? 'above' : 'below'}`, dataset: { code: f.code } },
    h('span', { class: 'f-text' }, `${findingName(f, lang)} — ${fmtPercent(f)} (${t('threshold')} ${Math.round(f.threshold * 100)}%)`),
    h(
      'div',
      { class: 'f-line' },
      h(
        'span',
        { class: 'f-bar', 'aria-hidden': 'true' },
        h('span', { class: 'f-fill', style: `width:${pct.toFixed(1)}%` }),
        h('span', { class: 'f-thr', style: `left:${(f.threshold * 100).toFixed(1)}%` }),
      ),
      h('span', { class: 'f-mark' }, f.positive ? '▲ ' : '▽ ', f.positive ? t('above') : t('below')),
      f.positive && f.priority !== 'routine' ? h('span', { class: `f-prio prio-${f.priority}` }, t(f.priority)) : null,
    ),
    ...extras,
  );
}
