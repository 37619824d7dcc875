"""The registry's message handlers: signed mutations from the Kafka door (decided exactly as the
HTTP door decides them) and the retention events it follows (a purged pupil's rows go)."""

from __future__ import annotations

from dataclasses import dataclass

from kafka.consumer.fetcher import ConsumerRecord
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.engine import Connection

from services.registry import store
from services.registry.credentials import (
    CLIENT_HEADER,
    SIGNATURE_HEADER,
    Credential,
    CredentialStore,
)
from services.registry.domain import References, evolve
from services.registry.service import MutationProblem, RegistryService
from shared.contracts.envelope import RecordedEvent, UndecodableMessage, summarise_validation_error
from shared.contracts.events import PupilDataPurged
from shared.contracts.mutations import Mutation
from shared.db import scrub_after_commit
from shared.kafka.consumer import Decoder, RejectedMessage

MUTATION = TypeAdapter(Mutation)


@dataclass(frozen=True)
class IntakeMessage:
    id: str  # the record's position: a redelivery of this record is recognised, a resend is not
    type: str
    credential: Credential
    mutation: Mutation


def make_intake_decoder(credentials: CredentialStore) -> Decoder:
    def decode(record: ConsumerRecord) -> IntakeMessage:
        headers = {name: value for name, value in (record.headers or [])}
        client, signature = headers.get(CLIENT_HEADER), headers.get(SIGNATURE_HEADER)
        if not client or not signature:
            raise UndecodableMessage("unsigned", f"headers {CLIENT_HEADER} and {SIGNATURE_HEADER} are required")
        credential = credentials.by_client_id(client.decode(errors="replace"))
        if credential is None:
            raise UndecodableMessage("unknown-client", "no active credential with this client id")
        # During a rotation's overlap the previous signing key is accepted too.
        if record.value is None or not credential.signature_matches(record.value, signature.decode(errors="replace")):
            raise UndecodableMessage("bad-signature", "the signature does not match the message")
        try:
            mutation = MUTATION.validate_json(record.value)
        except ValidationError as error:
            raise UndecodableMessage("invalid-mutation", summarise_validation_error(error)) from error
        return IntakeMessage(id=f"{record.topic}/{record.partition}/{record.offset}", type=mutation.kind,
                             credential=credential, mutation=mutation)

    return decode


def handle_intake(service: RegistryService, message: IntakeMessage, connection: Connection) -> None:
    try:
        service.report(connection, message.credential, [message.mutation])
    except MutationProblem as problem:
        raise RejectedMessage(problem.code, problem.detail) from problem


def apply_retention_event(recorded: RecordedEvent, connection: Connection) -> None:
    """A purge leaves the registry through the same `evolve` a replay folds it with."""
    event = recorded.event
    if isinstance(event, PupilDataPurged):
        state = store.load_state(connection, References(pupils=(event.pupil_id,),
                                                        dossiers=store.dossier_ids_of(connection, event.pupil_id)))
        store.save_state(connection, evolve(state, event), before=state)
        scrub_after_commit(connection)  # the pupil's name and parents' addresses leave the file too
