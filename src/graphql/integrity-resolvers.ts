import { AppError } from '../errors.js';
import type { QueryResolvers } from './generated/resolvers-types.js';
import { requireScope, type GraphQLContext } from './context.js';
import { checkSeqText } from '../validation.js';

function integrityOf(context: GraphQLContext) {
  if (!context.integrity)
    throw new AppError('SERVICE_UNAVAILABLE', 'Tamper evidence is not enabled on this process.');
  return context.integrity;
}

/** Query fields of src/graphql/schema/integrity.graphql: thin over the integrity service, as the REST routes are. */
export const integrityQueryResolvers: Pick<
  QueryResolvers<GraphQLContext>,
  'verifyIntegrity' | 'eventProof' | 'integrityPublicKey' | 'latestCheckpoint'
> = {
  async verifyIntegrity(_parent, { from, to }, context) {
    requireScope(context, 'admin');
    // The same rule as GET /integrity/verify's parameters: a seq within 0..2^63-1.
    if (from !== undefined && from !== null && from !== '') checkSeqText(from, 'from');
    if (to !== undefined && to !== null && to !== '') checkSeqText(to, 'to');
    return integrityOf(context).verify(from, to);
  },
  async eventProof(_parent, { id }, context) {
    requireScope(context, 'read');
    const { proof, ...rest } = await integrityOf(context).proof(String(id));
    return { ...rest, ...proof };
  },
  integrityPublicKey(_parent, _args, context) {
    requireScope(context, 'read');
    return integrityOf(context).publicKey();
  },
  async latestCheckpoint(_parent, _args, context) {
    requireScope(context, 'read');
    return integrityOf(context).latestCheckpoint();
  },
};
