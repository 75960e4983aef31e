/**
 * @switchboard/views — local, event-fed views of state other services own: the snapshot + sequence
 * + gap-resync consumer (`EventView`) and the version-gated map views keep their records in.
 */
export { EventView, type EventViewOptions } from './event-view.js';
export { VersionedMap } from './versioned-map.js';
