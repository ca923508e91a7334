import type { ModelInfo } from '../../protocol/index.js';

/** OpenAI's model object. `created` is when this service started (the files' own dates are not kept). */
export interface ModelObject {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

/** Who `owned_by` names: the service itself serves every model. */
const OWNER = 'llm-stream';

export function modelObject(model: ModelInfo, created: number): ModelObject {
  return { id: model.name, object: 'model', created, owned_by: OWNER };
}

/** `GET /v1/models`: the models this caller may use, in OpenAI's list shape. */
export function modelList(models: readonly ModelInfo[], created: number, allowed: readonly string[] | undefined): { object: 'list'; data: ModelObject[] } {
  return { object: 'list', data: models.filter((model) => !allowed || allowed.includes(model.name)).map((model) => modelObject(model, created)) };
}
