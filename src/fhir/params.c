/*
 * params.c - the search parameters: every parameter that US Core 6 requires
 * or recommends for each supported type, most other R4 parameters of those
 * types, and the common ones (_id, _lastUpdated, _tag, _security,
 * _profile).  Also the patient compartment: which parameters of each type
 * name the patients a resource belongs to.
 *
 * The table is sorted by (type, code) in strcmp order, with the common
 * parameters (type NULL) first, so lookups bisect it; a unit test checks
 * the order.  Constant data only; thread-safe.
 *
 * Paths use the simple syntax of model.h.  Where R4 narrows a reference
 * with ".where(resolve() is Patient)", the path names the element and the
 * targets array does the narrowing (fhir_index_resource() keeps only
 * references to the listed types).  Where R4 uses "as" on a choice
 * element, the path names the concrete choice ("valueQuantity").
 * Differences from R4 on purpose:
 *   - value-quantity and friends skip SampledData (no single value);
 *   - `subject` parameters accept any target type;
 *   - Goal `description` is the US Core token parameter (not in R4 core);
 *   - Patient `deceased` (a boolean-or-date FHIRPath) is not provided.
 */
#include "fhir/model.h"

#include <pthread.h>
#include <string.h>

/* Reference target lists (NULL-terminated). */
#define TARGETS(name, ...) static const char *const name[] = {__VA_ARGS__, NULL}
TARGETS(T_AGENT, "Device", "Organization", "Patient", "Practitioner", "PractitionerRole", "RelatedPerson");
TARGETS(T_ANY_PERFORMER, "CareTeam", "Device", "HealthcareService", "Organization", "Patient",
	"Practitioner", "PractitionerRole", "RelatedPerson");
TARGETS(T_APPOINTMENT, "Appointment");
TARGETS(T_APPT_ACTOR, "Device", "HealthcareService", "Location", "Patient", "Practitioner",
	"PractitionerRole", "RelatedPerson");
TARGETS(T_ASSERTER, "Patient", "Practitioner", "PractitionerRole", "RelatedPerson");
TARGETS(T_CAREPLAN, "CarePlan");
TARGETS(T_CARETEAM, "CareTeam");
TARGETS(T_COMM_RECIPIENT, "CareTeam", "Device", "Group", "HealthcareService", "Organization", "Patient",
	"Practitioner", "PractitionerRole", "RelatedPerson");
TARGETS(T_COMM_SENDER, "Device", "HealthcareService", "Organization", "Patient", "Practitioner",
	"PractitionerRole", "RelatedPerson");
TARGETS(T_CONDITION, "Condition");
TARGETS(T_CONSENTOR, "Organization", "Patient", "Practitioner", "PractitionerRole", "RelatedPerson");
TARGETS(T_CONSENT_ACTOR, "CareTeam", "Device", "Group", "Organization", "Patient", "Practitioner",
	"PractitionerRole", "RelatedPerson");
TARGETS(T_CONSENT_SOURCE, "Consent", "Contract", "DocumentReference", "QuestionnaireResponse");
TARGETS(T_DERIVED_FROM, "DocumentReference", "ImagingStudy", "Media", "MolecularSequence", "Observation",
	"QuestionnaireResponse");
TARGETS(T_DEVICE, "Device", "DeviceMetric");
TARGETS(T_DIAGNOSIS, "Condition", "Procedure");
TARGETS(T_DOCREF, "DocumentReference");
TARGETS(T_DR_BASED_ON, "CarePlan", "ImmunizationRecommendation", "MedicationRequest", "NutritionOrder",
	"ServiceRequest");
TARGETS(T_DR_PERFORMER, "CareTeam", "Organization", "Practitioner", "PractitionerRole");
TARGETS(T_ENCOUNTER, "Encounter");
TARGETS(T_ENCOUNTER_EOC, "Encounter", "EpisodeOfCare");
TARGETS(T_ENDPOINT, "Endpoint");
TARGETS(T_EPISODE, "EpisodeOfCare");
TARGETS(T_GOAL, "Goal");
TARGETS(T_HAS_MEMBER, "MolecularSequence", "Observation", "QuestionnaireResponse");
TARGETS(T_HEALTHCARESERVICE, "HealthcareService");
TARGETS(T_IMM_REASON, "Condition", "DiagnosticReport", "Observation");
TARGETS(T_INGREDIENT, "Medication", "Substance");
TARGETS(T_LOCATION, "Location");
TARGETS(T_MEDIA, "Media");
TARGETS(T_MEDICATION, "Medication");
TARGETS(T_OBSERVATION, "Observation");
TARGETS(T_OBS_BASED_ON, "CarePlan", "DeviceRequest", "ImmunizationRecommendation", "MedicationRequest",
	"NutritionOrder", "ServiceRequest");
TARGETS(T_OBS_PART_OF, "ImagingStudy", "Immunization", "MedicationAdministration", "MedicationDispense",
	"MedicationStatement", "Procedure");
TARGETS(T_OBS_PERFORMER, "CareTeam", "Organization", "Patient", "Practitioner", "PractitionerRole",
	"RelatedPerson");
TARGETS(T_ORGANIZATION, "Organization");
TARGETS(T_ORG_PRAC_ROLE, "Organization", "Practitioner", "PractitionerRole");
TARGETS(T_PATIENT, "Patient");
TARGETS(T_PATIENT_RP, "Patient", "RelatedPerson");
TARGETS(T_PRACTITIONER, "Practitioner");
TARGETS(T_PRAC_ROLE_RP, "Practitioner", "PractitionerRole", "RelatedPerson");
TARGETS(T_PROC_BASED_ON, "CarePlan", "ServiceRequest");
TARGETS(T_PROC_PART_OF, "MedicationAdministration", "Observation", "Procedure");
TARGETS(T_PROC_REASON, "Condition", "DiagnosticReport", "DocumentReference", "Observation", "Procedure");
TARGETS(T_QR_PART_OF, "Observation", "Procedure");
TARGETS(T_QUESTIONNAIRE, "Questionnaire");
TARGETS(T_REASON, "Condition", "ImmunizationRecommendation", "Observation", "Procedure");
TARGETS(T_SERVICEREQUEST, "ServiceRequest");
TARGETS(T_SLOT, "Slot");
TARGETS(T_SPECIMEN, "Specimen");
TARGETS(T_SR_BASED_ON, "CarePlan", "MedicationRequest", "ServiceRequest");
TARGETS(T_TASK, "Task");
TARGETS(T_TEAM_MEMBER, "CareTeam", "Organization", "Patient", "Practitioner", "PractitionerRole",
	"RelatedPerson");

#define P(t, c, k, path, expr, targets, desc) {t, c, FHIR_PARAM_##k, path, expr, targets, desc}

/* clang-format off */
const struct fhir_param fhir_params[] = {
	P(NULL, "_id", TOKEN, "id", "Resource.id", NULL, "Logical id of this artifact"),
	P(NULL, "_lastUpdated", DATE, "meta.lastUpdated", "Resource.meta.lastUpdated", NULL, "When the resource version last changed"),
	P(NULL, "_profile", URI, "meta.profile", "Resource.meta.profile", NULL, "Profiles this resource claims to conform to"),
	P(NULL, "_security", TOKEN, "meta.security", "Resource.meta.security", NULL, "Security labels applied to this resource"),
	P(NULL, "_tag", TOKEN, "meta.tag", "Resource.meta.tag", NULL, "Tags applied to this resource"),
	P("AllergyIntolerance", "asserter", REFERENCE, "asserter", "AllergyIntolerance.asserter", T_ASSERTER, "Source of the information about the allergy"),
	P("AllergyIntolerance", "category", TOKEN, "category", "AllergyIntolerance.category", NULL, "food | medication | environment | biologic"),
	P("AllergyIntolerance", "clinical-status", TOKEN, "clinicalStatus", "AllergyIntolerance.clinicalStatus", NULL, "active | inactive | resolved"),
	P("AllergyIntolerance", "code", TOKEN, "code | reaction.substance", "AllergyIntolerance.code | AllergyIntolerance.reaction.substance", NULL, "Code that identifies the allergy or intolerance"),
	P("AllergyIntolerance", "criticality", TOKEN, "criticality", "AllergyIntolerance.criticality", NULL, "low | high | unable-to-assess"),
	P("AllergyIntolerance", "date", DATE, "recordedDate", "AllergyIntolerance.recordedDate", NULL, "Date first version of the resource instance was recorded"),
	P("AllergyIntolerance", "identifier", TOKEN, "identifier", "AllergyIntolerance.identifier", NULL, "External ids for this item"),
	P("AllergyIntolerance", "last-date", DATE, "lastOccurrence", "AllergyIntolerance.lastOccurrence", NULL, "Date(/time) of last known occurrence of a reaction"),
	P("AllergyIntolerance", "manifestation", TOKEN, "reaction.manifestation", "AllergyIntolerance.reaction.manifestation", NULL, "Clinical symptoms/signs associated with the event"),
	P("AllergyIntolerance", "onset", DATE, "reaction.onset", "AllergyIntolerance.reaction.onset", NULL, "Date(/time) when manifestations showed"),
	P("AllergyIntolerance", "patient", REFERENCE, "patient", "AllergyIntolerance.patient", T_PATIENT, "Who the sensitivity is for"),
	P("AllergyIntolerance", "recorder", REFERENCE, "recorder", "AllergyIntolerance.recorder", T_ASSERTER, "Who recorded the sensitivity"),
	P("AllergyIntolerance", "severity", TOKEN, "reaction.severity", "AllergyIntolerance.reaction.severity", NULL, "mild | moderate | severe (of event as a whole)"),
	P("AllergyIntolerance", "type", TOKEN, "type", "AllergyIntolerance.type", NULL, "allergy | intolerance - Underlying mechanism (if known)"),
	P("AllergyIntolerance", "verification-status", TOKEN, "verificationStatus", "AllergyIntolerance.verificationStatus", NULL, "unconfirmed | confirmed | refuted | entered-in-error"),
	P("Appointment", "actor", REFERENCE, "participant.actor", "Appointment.participant.actor", T_APPT_ACTOR, "Any one of the individuals participating in the appointment"),
	P("Appointment", "appointment-type", TOKEN, "appointmentType", "Appointment.appointmentType", NULL, "The style of appointment or patient that has been booked in the slot"),
	P("Appointment", "based-on", REFERENCE, "basedOn", "Appointment.basedOn", T_SERVICEREQUEST, "The service request this appointment is allocated to assess"),
	P("Appointment", "date", DATE, "start", "Appointment.start", NULL, "Appointment date/time"),
	P("Appointment", "identifier", TOKEN, "identifier", "Appointment.identifier", NULL, "An identifier of this appointment"),
	P("Appointment", "location", REFERENCE, "participant.actor", "Appointment.participant.actor.where(resolve() is Location)", T_LOCATION, "This location is listed in the participants of the appointment"),
	P("Appointment", "part-status", TOKEN, "participant.status", "Appointment.participant.status", NULL, "The participation status of the subject, or other participant on the appointment"),
	P("Appointment", "patient", REFERENCE, "participant.actor", "Appointment.participant.actor.where(resolve() is Patient)", T_PATIENT, "One of the individuals of the appointment is this patient"),
	P("Appointment", "practitioner", REFERENCE, "participant.actor", "Appointment.participant.actor.where(resolve() is Practitioner)", T_PRACTITIONER, "One of the individuals of the appointment is this practitioner"),
	P("Appointment", "reason-code", TOKEN, "reasonCode", "Appointment.reasonCode", NULL, "Coded reason this appointment is scheduled"),
	P("Appointment", "reason-reference", REFERENCE, "reasonReference", "Appointment.reasonReference", T_REASON, "Reason the appointment is to take place (resource)"),
	P("Appointment", "service-category", TOKEN, "serviceCategory", "Appointment.serviceCategory", NULL, "A broad categorization of the service that is to be performed during this appointment"),
	P("Appointment", "service-type", TOKEN, "serviceType", "Appointment.serviceType", NULL, "The specific service that is to be performed during this appointment"),
	P("Appointment", "slot", REFERENCE, "slot", "Appointment.slot", T_SLOT, "The slots that this appointment is filling"),
	P("Appointment", "specialty", TOKEN, "specialty", "Appointment.specialty", NULL, "The specialty of a practitioner that would be required to perform the service requested in this appointment"),
	P("Appointment", "status", TOKEN, "status", "Appointment.status", NULL, "The overall status of the appointment"),
	P("Appointment", "supporting-info", REFERENCE, "supportingInformation", "Appointment.supportingInformation", NULL, "Additional information to support the appointment"),
	P("AuditEvent", "action", TOKEN, "action", "AuditEvent.action", NULL, "Type of action performed during the event"),
	P("AuditEvent", "address", STRING, "agent.network.address", "AuditEvent.agent.network.address", NULL, "Identifier for the network access point of the user device"),
	P("AuditEvent", "agent", REFERENCE, "agent.who", "AuditEvent.agent.who", T_AGENT, "Identifier of who"),
	P("AuditEvent", "agent-name", STRING, "agent.name", "AuditEvent.agent.name", NULL, "Human friendly name for the agent"),
	P("AuditEvent", "agent-role", TOKEN, "agent.role", "AuditEvent.agent.role", NULL, "Agent role in the event"),
	P("AuditEvent", "altid", TOKEN, "agent.altId", "AuditEvent.agent.altId", NULL, "Alternative User identity"),
	P("AuditEvent", "date", DATE, "recorded", "AuditEvent.recorded", NULL, "Time when the event was recorded"),
	P("AuditEvent", "entity", REFERENCE, "entity.what", "AuditEvent.entity.what", NULL, "Specific instance of resource"),
	P("AuditEvent", "entity-name", STRING, "entity.name", "AuditEvent.entity.name", NULL, "Descriptor for entity"),
	P("AuditEvent", "entity-role", TOKEN, "entity.role", "AuditEvent.entity.role", NULL, "What role the entity played"),
	P("AuditEvent", "entity-type", TOKEN, "entity.type", "AuditEvent.entity.type", NULL, "Type of entity involved"),
	P("AuditEvent", "outcome", TOKEN, "outcome", "AuditEvent.outcome", NULL, "Whether the event succeeded or failed"),
	P("AuditEvent", "patient", REFERENCE, "agent.who | entity.what", "AuditEvent.agent.who.where(resolve() is Patient) | AuditEvent.entity.what.where(resolve() is Patient)", T_PATIENT, "Identifier of who"),
	P("AuditEvent", "policy", URI, "agent.policy", "AuditEvent.agent.policy", NULL, "Policy that authorized event"),
	P("AuditEvent", "site", TOKEN, "source.site", "AuditEvent.source.site", NULL, "Logical source location within the enterprise"),
	P("AuditEvent", "source", REFERENCE, "source.observer", "AuditEvent.source.observer", T_AGENT, "The identity of source detecting the event"),
	P("AuditEvent", "subtype", TOKEN, "subtype", "AuditEvent.subtype", NULL, "More specific type/id for the event"),
	P("AuditEvent", "type", TOKEN, "type", "AuditEvent.type", NULL, "Type/identifier of event"),
	P("CarePlan", "activity-code", TOKEN, "activity.detail.code", "CarePlan.activity.detail.code", NULL, "Detail type of activity"),
	P("CarePlan", "activity-date", DATE, "activity.detail.scheduled[x]", "CarePlan.activity.detail.scheduled", NULL, "Specified date occurs within period specified by CarePlan.activity.detail.scheduled[x]"),
	P("CarePlan", "based-on", REFERENCE, "basedOn", "CarePlan.basedOn", T_CAREPLAN, "Fulfills CarePlan"),
	P("CarePlan", "care-team", REFERENCE, "careTeam", "CarePlan.careTeam", T_CARETEAM, "Who's involved in plan?"),
	P("CarePlan", "category", TOKEN, "category", "CarePlan.category", NULL, "Type of plan"),
	P("CarePlan", "condition", REFERENCE, "addresses", "CarePlan.addresses", T_CONDITION, "Health issues this plan addresses"),
	P("CarePlan", "date", DATE, "period", "CarePlan.period", NULL, "Time period plan covers"),
	P("CarePlan", "encounter", REFERENCE, "encounter", "CarePlan.encounter", T_ENCOUNTER, "Encounter created as part of"),
	P("CarePlan", "goal", REFERENCE, "goal", "CarePlan.goal", T_GOAL, "Desired outcome of plan"),
	P("CarePlan", "identifier", TOKEN, "identifier", "CarePlan.identifier", NULL, "External Ids for this plan"),
	P("CarePlan", "intent", TOKEN, "intent", "CarePlan.intent", NULL, "proposal | plan | order | option"),
	P("CarePlan", "part-of", REFERENCE, "partOf", "CarePlan.partOf", T_CAREPLAN, "Part of referenced CarePlan"),
	P("CarePlan", "patient", REFERENCE, "subject", "CarePlan.subject.where(resolve() is Patient)", T_PATIENT, "Who the care plan is for"),
	P("CarePlan", "performer", REFERENCE, "activity.detail.performer", "CarePlan.activity.detail.performer", T_ANY_PERFORMER, "Matches if the practitioner is listed as a performer in any of the simple activities"),
	P("CarePlan", "status", TOKEN, "status", "CarePlan.status", NULL, "draft | active | on-hold | revoked | completed | entered-in-error | unknown"),
	P("CarePlan", "subject", REFERENCE, "subject", "CarePlan.subject", NULL, "Who the care plan is for"),
	P("CareTeam", "category", TOKEN, "category", "CareTeam.category", NULL, "Type of team"),
	P("CareTeam", "date", DATE, "period", "CareTeam.period", NULL, "Time period team covers"),
	P("CareTeam", "encounter", REFERENCE, "encounter", "CareTeam.encounter", T_ENCOUNTER, "Encounter created as part of"),
	P("CareTeam", "identifier", TOKEN, "identifier", "CareTeam.identifier", NULL, "External Ids for this team"),
	P("CareTeam", "participant", REFERENCE, "participant.member", "CareTeam.participant.member", T_TEAM_MEMBER, "Who is involved"),
	P("CareTeam", "patient", REFERENCE, "subject", "CareTeam.subject.where(resolve() is Patient)", T_PATIENT, "Who care team is for"),
	P("CareTeam", "status", TOKEN, "status", "CareTeam.status", NULL, "proposed | active | suspended | inactive | entered-in-error"),
	P("CareTeam", "subject", REFERENCE, "subject", "CareTeam.subject", NULL, "Who care team is for"),
	P("Communication", "based-on", REFERENCE, "basedOn", "Communication.basedOn", NULL, "Request fulfilled by this communication"),
	P("Communication", "category", TOKEN, "category", "Communication.category", NULL, "Message category"),
	P("Communication", "encounter", REFERENCE, "encounter", "Communication.encounter", T_ENCOUNTER, "Encounter created as part of"),
	P("Communication", "identifier", TOKEN, "identifier", "Communication.identifier", NULL, "Unique identifier"),
	P("Communication", "medium", TOKEN, "medium", "Communication.medium", NULL, "A channel of communication"),
	P("Communication", "part-of", REFERENCE, "partOf", "Communication.partOf", NULL, "Part of this action"),
	P("Communication", "patient", REFERENCE, "subject", "Communication.subject.where(resolve() is Patient)", T_PATIENT, "Focus of message"),
	P("Communication", "received", DATE, "received", "Communication.received", NULL, "When received"),
	P("Communication", "recipient", REFERENCE, "recipient", "Communication.recipient", T_COMM_RECIPIENT, "Message recipient"),
	P("Communication", "sender", REFERENCE, "sender", "Communication.sender", T_COMM_SENDER, "Message sender"),
	P("Communication", "sent", DATE, "sent", "Communication.sent", NULL, "When sent"),
	P("Communication", "status", TOKEN, "status", "Communication.status", NULL, "preparation | in-progress | not-done | on-hold | stopped | completed | entered-in-error | unknown"),
	P("Communication", "subject", REFERENCE, "subject", "Communication.subject", NULL, "Focus of message"),
	P("Condition", "abatement-date", DATE, "abatementDateTime | abatementPeriod", "Condition.abatement.as(dateTime) | Condition.abatement.as(Period)", NULL, "Date-related abatements (dateTime and period)"),
	P("Condition", "abatement-string", STRING, "abatementString", "Condition.abatement.as(string)", NULL, "Abatement as a string"),
	P("Condition", "asserter", REFERENCE, "asserter", "Condition.asserter", T_ASSERTER, "Person who asserts this condition"),
	P("Condition", "body-site", TOKEN, "bodySite", "Condition.bodySite", NULL, "Anatomical location, if relevant"),
	P("Condition", "category", TOKEN, "category", "Condition.category", NULL, "The category of the condition"),
	P("Condition", "clinical-status", TOKEN, "clinicalStatus", "Condition.clinicalStatus", NULL, "The clinical status of the condition"),
	P("Condition", "code", TOKEN, "code", "Condition.code", NULL, "Code for the condition"),
	P("Condition", "encounter", REFERENCE, "encounter", "Condition.encounter", T_ENCOUNTER, "Encounter created as part of"),
	P("Condition", "evidence", TOKEN, "evidence.code", "Condition.evidence.code", NULL, "Manifestation/symptom"),
	P("Condition", "evidence-detail", REFERENCE, "evidence.detail", "Condition.evidence.detail", NULL, "Supporting information found elsewhere"),
	P("Condition", "identifier", TOKEN, "identifier", "Condition.identifier", NULL, "A unique identifier of the condition record"),
	P("Condition", "onset-date", DATE, "onsetDateTime | onsetPeriod", "Condition.onset.as(dateTime) | Condition.onset.as(Period)", NULL, "Date related onsets (dateTime and Period)"),
	P("Condition", "onset-info", STRING, "onsetString", "Condition.onset.as(string)", NULL, "Onsets as a string"),
	P("Condition", "patient", REFERENCE, "subject", "Condition.subject.where(resolve() is Patient)", T_PATIENT, "Who has the condition?"),
	P("Condition", "recorded-date", DATE, "recordedDate", "Condition.recordedDate", NULL, "Date record was first recorded"),
	P("Condition", "severity", TOKEN, "severity", "Condition.severity", NULL, "The severity of the condition"),
	P("Condition", "stage", TOKEN, "stage.summary", "Condition.stage.summary", NULL, "Simple summary (disease specific)"),
	P("Condition", "subject", REFERENCE, "subject", "Condition.subject", NULL, "Who has the condition?"),
	P("Condition", "verification-status", TOKEN, "verificationStatus", "Condition.verificationStatus", NULL, "unconfirmed | provisional | differential | confirmed | refuted | entered-in-error"),
	P("Consent", "action", TOKEN, "provision.action", "Consent.provision.action", NULL, "Actions controlled by this rule"),
	P("Consent", "actor", REFERENCE, "provision.actor.reference", "Consent.provision.actor.reference", T_CONSENT_ACTOR, "Resource for the actor (or group, by role)"),
	P("Consent", "category", TOKEN, "category", "Consent.category", NULL, "Classification of the consent statement - for indexing/retrieval"),
	P("Consent", "consentor", REFERENCE, "performer", "Consent.performer", T_CONSENTOR, "Who is agreeing to the policy and rules"),
	P("Consent", "data", REFERENCE, "provision.data.reference", "Consent.provision.data.reference", NULL, "The actual data reference"),
	P("Consent", "date", DATE, "dateTime", "Consent.dateTime", NULL, "When this Consent was created or indexed"),
	P("Consent", "identifier", TOKEN, "identifier", "Consent.identifier", NULL, "Identifier for this record (external references)"),
	P("Consent", "organization", REFERENCE, "organization", "Consent.organization", T_ORGANIZATION, "Custodian of the consent"),
	P("Consent", "patient", REFERENCE, "patient", "Consent.patient", T_PATIENT, "Who the consent applies to"),
	P("Consent", "period", DATE, "provision.period", "Consent.provision.period", NULL, "Timeframe for this rule"),
	P("Consent", "purpose", TOKEN, "provision.purpose", "Consent.provision.purpose", NULL, "Context of activities covered by this rule"),
	P("Consent", "scope", TOKEN, "scope", "Consent.scope", NULL, "Which of the four areas this resource covers (extensible)"),
	P("Consent", "security-label", TOKEN, "provision.securityLabel", "Consent.provision.securityLabel", NULL, "Security Labels that define affected resources"),
	P("Consent", "source-reference", REFERENCE, "source[x]", "Consent.source", T_CONSENT_SOURCE, "Search by reference to a Consent, DocumentReference, Contract or QuestionnaireResponse"),
	P("Consent", "status", TOKEN, "status", "Consent.status", NULL, "draft | proposed | active | rejected | inactive | entered-in-error"),
	P("Device", "device-name", STRING, "deviceName.name | type.coding.display | type.text", "Device.deviceName.name | Device.type.coding.display | Device.type.text", NULL, "A server defined search that may match any of the string fields in Device.deviceName or Device.type"),
	P("Device", "identifier", TOKEN, "identifier", "Device.identifier", NULL, "Instance id from manufacturer, owner, and others"),
	P("Device", "location", REFERENCE, "location", "Device.location", T_LOCATION, "A location, where the resource is found"),
	P("Device", "manufacturer", STRING, "manufacturer", "Device.manufacturer", NULL, "The manufacturer of the device"),
	P("Device", "model", STRING, "modelNumber", "Device.modelNumber", NULL, "The model of the device"),
	P("Device", "organization", REFERENCE, "owner", "Device.owner", T_ORGANIZATION, "The organization responsible for the device"),
	P("Device", "patient", REFERENCE, "patient", "Device.patient", T_PATIENT, "Patient information, if the resource is affixed to a person"),
	P("Device", "status", TOKEN, "status", "Device.status", NULL, "active | inactive | entered-in-error | unknown"),
	P("Device", "type", TOKEN, "type", "Device.type", NULL, "The type of the device"),
	P("Device", "udi-carrier", STRING, "udiCarrier.carrierHRF", "Device.udiCarrier.carrierHRF", NULL, "UDI Barcode (RFID or other technology) string in HRF format"),
	P("Device", "udi-di", STRING, "udiCarrier.deviceIdentifier", "Device.udiCarrier.deviceIdentifier", NULL, "The udi Device Identifier (DI)"),
	P("Device", "url", URI, "url", "Device.url", NULL, "Network address to contact device"),
	P("DiagnosticReport", "based-on", REFERENCE, "basedOn", "DiagnosticReport.basedOn", T_DR_BASED_ON, "Reference to the service request"),
	P("DiagnosticReport", "category", TOKEN, "category", "DiagnosticReport.category", NULL, "Which diagnostic discipline/department created the report"),
	P("DiagnosticReport", "code", TOKEN, "code", "DiagnosticReport.code", NULL, "The code for the report, as opposed to codes for the atomic results"),
	P("DiagnosticReport", "conclusion", TOKEN, "conclusionCode", "DiagnosticReport.conclusionCode", NULL, "A coded conclusion (interpretation/impression) on the report"),
	P("DiagnosticReport", "date", DATE, "effective[x]", "DiagnosticReport.effective", NULL, "The clinically relevant time of the report"),
	P("DiagnosticReport", "encounter", REFERENCE, "encounter", "DiagnosticReport.encounter", T_ENCOUNTER, "The Encounter when the order was made"),
	P("DiagnosticReport", "identifier", TOKEN, "identifier", "DiagnosticReport.identifier", NULL, "An identifier for the report"),
	P("DiagnosticReport", "issued", DATE, "issued", "DiagnosticReport.issued", NULL, "When the report was issued"),
	P("DiagnosticReport", "media", REFERENCE, "media.link", "DiagnosticReport.media.link", T_MEDIA, "A reference to the image source"),
	P("DiagnosticReport", "patient", REFERENCE, "subject", "DiagnosticReport.subject.where(resolve() is Patient)", T_PATIENT, "The subject of the report if a patient"),
	P("DiagnosticReport", "performer", REFERENCE, "performer", "DiagnosticReport.performer", T_DR_PERFORMER, "Who is responsible for the report"),
	P("DiagnosticReport", "result", REFERENCE, "result", "DiagnosticReport.result", T_OBSERVATION, "Link to an atomic result (observation resource)"),
	P("DiagnosticReport", "results-interpreter", REFERENCE, "resultsInterpreter", "DiagnosticReport.resultsInterpreter", T_DR_PERFORMER, "Who was the source of the report"),
	P("DiagnosticReport", "specimen", REFERENCE, "specimen", "DiagnosticReport.specimen", T_SPECIMEN, "The specimen details"),
	P("DiagnosticReport", "status", TOKEN, "status", "DiagnosticReport.status", NULL, "The status of the report"),
	P("DiagnosticReport", "subject", REFERENCE, "subject", "DiagnosticReport.subject", NULL, "The subject of the report"),
	P("DocumentReference", "authenticator", REFERENCE, "authenticator", "DocumentReference.authenticator", T_ORG_PRAC_ROLE, "Who/what authenticated the document"),
	P("DocumentReference", "author", REFERENCE, "author", "DocumentReference.author", T_AGENT, "Who and/or what authored the document"),
	P("DocumentReference", "category", TOKEN, "category", "DocumentReference.category", NULL, "Categorization of document"),
	P("DocumentReference", "contenttype", TOKEN, "content.attachment.contentType", "DocumentReference.content.attachment.contentType", NULL, "Mime type of the content, with charset etc."),
	P("DocumentReference", "custodian", REFERENCE, "custodian", "DocumentReference.custodian", T_ORGANIZATION, "Organization which maintains the document"),
	P("DocumentReference", "date", DATE, "date", "DocumentReference.date", NULL, "When this document reference was created"),
	P("DocumentReference", "description", STRING, "description", "DocumentReference.description", NULL, "Human-readable description"),
	P("DocumentReference", "encounter", REFERENCE, "context.encounter", "DocumentReference.context.encounter", T_ENCOUNTER_EOC, "Context of the document content"),
	P("DocumentReference", "event", TOKEN, "context.event", "DocumentReference.context.event", NULL, "Main clinical acts documented"),
	P("DocumentReference", "facility", TOKEN, "context.facilityType", "DocumentReference.context.facilityType", NULL, "Kind of facility where patient was seen"),
	P("DocumentReference", "format", TOKEN, "content.format", "DocumentReference.content.format", NULL, "Format/content rules for the document"),
	P("DocumentReference", "identifier", TOKEN, "masterIdentifier | identifier", "DocumentReference.masterIdentifier | DocumentReference.identifier", NULL, "Master Version Specific Identifier"),
	P("DocumentReference", "language", TOKEN, "content.attachment.language", "DocumentReference.content.attachment.language", NULL, "Human language of the content (BCP-47)"),
	P("DocumentReference", "location", URI, "content.attachment.url", "DocumentReference.content.attachment.url", NULL, "Uri where the data can be found"),
	P("DocumentReference", "patient", REFERENCE, "subject", "DocumentReference.subject.where(resolve() is Patient)", T_PATIENT, "Who/what is the subject of the document"),
	P("DocumentReference", "period", DATE, "context.period", "DocumentReference.context.period", NULL, "Time of service that is being documented"),
	P("DocumentReference", "related", REFERENCE, "context.related", "DocumentReference.context.related", NULL, "Related identifiers or resources"),
	P("DocumentReference", "relatesto", REFERENCE, "relatesTo.target", "DocumentReference.relatesTo.target", T_DOCREF, "Target of the relationship"),
	P("DocumentReference", "relation", TOKEN, "relatesTo.code", "DocumentReference.relatesTo.code", NULL, "replaces | transforms | signs | appends"),
	P("DocumentReference", "security-label", TOKEN, "securityLabel", "DocumentReference.securityLabel", NULL, "Document security-tags"),
	P("DocumentReference", "setting", TOKEN, "context.practiceSetting", "DocumentReference.context.practiceSetting", NULL, "Additional details about where the content was created (e.g. clinical specialty)"),
	P("DocumentReference", "status", TOKEN, "status", "DocumentReference.status", NULL, "current | superseded | entered-in-error"),
	P("DocumentReference", "subject", REFERENCE, "subject", "DocumentReference.subject", NULL, "Who/what is the subject of the document"),
	P("DocumentReference", "type", TOKEN, "type", "DocumentReference.type", NULL, "Kind of document (LOINC if possible)"),
	P("Encounter", "appointment", REFERENCE, "appointment", "Encounter.appointment", T_APPOINTMENT, "The appointment that scheduled this encounter"),
	P("Encounter", "based-on", REFERENCE, "basedOn", "Encounter.basedOn", T_SERVICEREQUEST, "The ServiceRequest that initiated this encounter"),
	P("Encounter", "class", TOKEN, "class", "Encounter.class", NULL, "Classification of patient encounter"),
	P("Encounter", "date", DATE, "period", "Encounter.period", NULL, "A date within the period the Encounter lasted"),
	P("Encounter", "diagnosis", REFERENCE, "diagnosis.condition", "Encounter.diagnosis.condition", T_DIAGNOSIS, "The diagnosis or procedure relevant to the encounter"),
	P("Encounter", "episode-of-care", REFERENCE, "episodeOfCare", "Encounter.episodeOfCare", T_EPISODE, "Episode(s) of care that this encounter should be recorded against"),
	P("Encounter", "identifier", TOKEN, "identifier", "Encounter.identifier", NULL, "Identifier(s) by which this encounter is known"),
	P("Encounter", "length", QUANTITY, "length", "Encounter.length", NULL, "Length of encounter in days"),
	P("Encounter", "location", REFERENCE, "location.location", "Encounter.location.location", T_LOCATION, "Location the encounter takes place"),
	P("Encounter", "location-period", DATE, "location.period", "Encounter.location.period", NULL, "Time period during which the patient was present at the location"),
	P("Encounter", "part-of", REFERENCE, "partOf", "Encounter.partOf", T_ENCOUNTER, "Another Encounter this encounter is part of"),
	P("Encounter", "participant", REFERENCE, "participant.individual", "Encounter.participant.individual", T_PRAC_ROLE_RP, "Persons involved in the encounter other than the patient"),
	P("Encounter", "participant-type", TOKEN, "participant.type", "Encounter.participant.type", NULL, "Role of participant in encounter"),
	P("Encounter", "patient", REFERENCE, "subject", "Encounter.subject.where(resolve() is Patient)", T_PATIENT, "The patient or group present at the encounter"),
	P("Encounter", "practitioner", REFERENCE, "participant.individual", "Encounter.participant.individual.where(resolve() is Practitioner)", T_PRACTITIONER, "Persons involved in the encounter other than the patient"),
	P("Encounter", "reason-code", TOKEN, "reasonCode", "Encounter.reasonCode", NULL, "Coded reason the encounter takes place"),
	P("Encounter", "reason-reference", REFERENCE, "reasonReference", "Encounter.reasonReference", T_REASON, "Reason the encounter takes place (reference)"),
	P("Encounter", "service-provider", REFERENCE, "serviceProvider", "Encounter.serviceProvider", T_ORGANIZATION, "The organization (facility) responsible for this encounter"),
	P("Encounter", "special-arrangement", TOKEN, "hospitalization.specialArrangement", "Encounter.hospitalization.specialArrangement", NULL, "Wheelchair, translator, stretcher, etc."),
	P("Encounter", "status", TOKEN, "status", "Encounter.status", NULL, "planned | arrived | triaged | in-progress | onleave | finished | cancelled +"),
	P("Encounter", "subject", REFERENCE, "subject", "Encounter.subject", NULL, "The patient or group present at the encounter"),
	P("Encounter", "type", TOKEN, "type", "Encounter.type", NULL, "Specific type of encounter"),
	P("Goal", "achievement-status", TOKEN, "achievementStatus", "Goal.achievementStatus", NULL, "in-progress | improving | worsening | no-change | achieved | sustaining | not-achieved | no-progress | not-attainable"),
	P("Goal", "category", TOKEN, "category", "Goal.category", NULL, "E.g. Treatment, dietary, behavioral, etc."),
	P("Goal", "description", TOKEN, "description", "Goal.description", NULL, "Code or text describing the goal (US Core)"),
	P("Goal", "identifier", TOKEN, "identifier", "Goal.identifier", NULL, "External Ids for this goal"),
	P("Goal", "lifecycle-status", TOKEN, "lifecycleStatus", "Goal.lifecycleStatus", NULL, "proposed | planned | accepted | active | on-hold | completed | cancelled | entered-in-error | rejected"),
	P("Goal", "patient", REFERENCE, "subject", "Goal.subject.where(resolve() is Patient)", T_PATIENT, "Who this goal is intended for"),
	P("Goal", "start-date", DATE, "startDate", "(Goal.start as date)", NULL, "When goal pursuit begins"),
	P("Goal", "subject", REFERENCE, "subject", "Goal.subject", NULL, "Who this goal is intended for"),
	P("Goal", "target-date", DATE, "target.dueDate", "(Goal.target.due as date)", NULL, "Reach goal on or before"),
	P("Immunization", "date", DATE, "occurrence[x]", "Immunization.occurrence", NULL, "Vaccination (non)-Administration Date"),
	P("Immunization", "identifier", TOKEN, "identifier", "Immunization.identifier", NULL, "Business identifier"),
	P("Immunization", "location", REFERENCE, "location", "Immunization.location", T_LOCATION, "The service delivery location or facility in which the vaccine was / was to be administered"),
	P("Immunization", "lot-number", STRING, "lotNumber", "Immunization.lotNumber", NULL, "Vaccine Lot Number"),
	P("Immunization", "manufacturer", REFERENCE, "manufacturer", "Immunization.manufacturer", T_ORGANIZATION, "Vaccine Manufacturer"),
	P("Immunization", "patient", REFERENCE, "patient", "Immunization.patient", T_PATIENT, "The patient for the vaccination record"),
	P("Immunization", "performer", REFERENCE, "performer.actor", "Immunization.performer.actor", T_ORG_PRAC_ROLE, "The practitioner or organization who played a role in the vaccination"),
	P("Immunization", "reaction", REFERENCE, "reaction.detail", "Immunization.reaction.detail", T_OBSERVATION, "Additional information on reaction"),
	P("Immunization", "reaction-date", DATE, "reaction.date", "Immunization.reaction.date", NULL, "When reaction started"),
	P("Immunization", "reason-code", TOKEN, "reasonCode", "Immunization.reasonCode", NULL, "Reason why the vaccine was administered"),
	P("Immunization", "reason-reference", REFERENCE, "reasonReference", "Immunization.reasonReference", T_IMM_REASON, "Why immunization occurred"),
	P("Immunization", "series", STRING, "protocolApplied.series", "Immunization.protocolApplied.series", NULL, "The series being followed by the provider"),
	P("Immunization", "status", TOKEN, "status", "Immunization.status", NULL, "Immunization event status"),
	P("Immunization", "status-reason", TOKEN, "statusReason", "Immunization.statusReason", NULL, "Reason why the vaccine was not administered"),
	P("Immunization", "target-disease", TOKEN, "protocolApplied.targetDisease", "Immunization.protocolApplied.targetDisease", NULL, "The target disease the dose is being administered against"),
	P("Immunization", "vaccine-code", TOKEN, "vaccineCode", "Immunization.vaccineCode", NULL, "Vaccine Product Administered"),
	P("Location", "address", STRING, "address", "Location.address", NULL, "A (part of the) address of the location"),
	P("Location", "address-city", STRING, "address.city", "Location.address.city", NULL, "A city specified in an address"),
	P("Location", "address-country", STRING, "address.country", "Location.address.country", NULL, "A country specified in an address"),
	P("Location", "address-postalcode", STRING, "address.postalCode", "Location.address.postalCode", NULL, "A postal code specified in an address"),
	P("Location", "address-state", STRING, "address.state", "Location.address.state", NULL, "A state specified in an address"),
	P("Location", "address-use", TOKEN, "address.use", "Location.address.use", NULL, "A use code specified in an address"),
	P("Location", "endpoint", REFERENCE, "endpoint", "Location.endpoint", T_ENDPOINT, "Technical endpoints providing access to services operated for the location"),
	P("Location", "identifier", TOKEN, "identifier", "Location.identifier", NULL, "An identifier for the location"),
	P("Location", "name", STRING, "name | alias", "Location.name | Location.alias", NULL, "A portion of the location's name or alias"),
	P("Location", "operational-status", TOKEN, "operationalStatus", "Location.operationalStatus", NULL, "Searches for locations (typically bed/room) that have an operational status (e.g. contaminated, housekeeping)"),
	P("Location", "organization", REFERENCE, "managingOrganization", "Location.managingOrganization", T_ORGANIZATION, "Searches for locations that are managed by the provided organization"),
	P("Location", "partof", REFERENCE, "partOf", "Location.partOf", T_LOCATION, "A location of which this location is a part"),
	P("Location", "status", TOKEN, "status", "Location.status", NULL, "Searches for locations with a specific kind of status"),
	P("Location", "type", TOKEN, "type", "Location.type", NULL, "A code for the type of location"),
	P("Medication", "code", TOKEN, "code", "Medication.code", NULL, "Returns medications for a specific code"),
	P("Medication", "expiration-date", DATE, "batch.expirationDate", "Medication.batch.expirationDate", NULL, "Returns medications in a batch with this expiration date"),
	P("Medication", "form", TOKEN, "form", "Medication.form", NULL, "Returns medications for a specific dose form"),
	P("Medication", "identifier", TOKEN, "identifier", "Medication.identifier", NULL, "Returns medications with this external identifier"),
	P("Medication", "ingredient", REFERENCE, "ingredient.itemReference", "(Medication.ingredient.item as Reference)", T_INGREDIENT, "Returns medications for this ingredient reference"),
	P("Medication", "ingredient-code", TOKEN, "ingredient.itemCodeableConcept", "(Medication.ingredient.item as CodeableConcept)", NULL, "Returns medications for this ingredient code"),
	P("Medication", "lot-number", TOKEN, "batch.lotNumber", "Medication.batch.lotNumber", NULL, "Returns medications in a batch with this lot number"),
	P("Medication", "manufacturer", REFERENCE, "manufacturer", "Medication.manufacturer", T_ORGANIZATION, "Returns medications made or sold for this manufacturer"),
	P("Medication", "status", TOKEN, "status", "Medication.status", NULL, "Returns medications for this status"),
	P("MedicationRequest", "authoredon", DATE, "authoredOn", "MedicationRequest.authoredOn", NULL, "Return prescriptions written on this date"),
	P("MedicationRequest", "category", TOKEN, "category", "MedicationRequest.category", NULL, "Returns prescriptions with different categories"),
	P("MedicationRequest", "code", TOKEN, "medicationCodeableConcept", "(MedicationRequest.medication as CodeableConcept)", NULL, "Return prescriptions of this medication code"),
	P("MedicationRequest", "date", DATE, "dosageInstruction.timing.event", "MedicationRequest.dosageInstruction.timing.event", NULL, "Returns medication request to be administered on a specific date"),
	P("MedicationRequest", "encounter", REFERENCE, "encounter", "MedicationRequest.encounter", T_ENCOUNTER, "Return prescriptions with this encounter identifier"),
	P("MedicationRequest", "identifier", TOKEN, "identifier", "MedicationRequest.identifier", NULL, "Return prescriptions with this external identifier"),
	P("MedicationRequest", "intended-dispenser", REFERENCE, "dispenseRequest.performer", "MedicationRequest.dispenseRequest.performer", T_ORGANIZATION, "Returns prescriptions intended to be dispensed by this Organization"),
	P("MedicationRequest", "intended-performer", REFERENCE, "performer", "MedicationRequest.performer", T_ANY_PERFORMER, "Returns the intended performer of the administration of the medication request"),
	P("MedicationRequest", "intended-performertype", TOKEN, "performerType", "MedicationRequest.performerType", NULL, "Returns requests for a specific type of performer"),
	P("MedicationRequest", "intent", TOKEN, "intent", "MedicationRequest.intent", NULL, "Returns prescriptions with different intents"),
	P("MedicationRequest", "medication", REFERENCE, "medicationReference", "(MedicationRequest.medication as Reference)", T_MEDICATION, "Return prescriptions for this medication reference"),
	P("MedicationRequest", "patient", REFERENCE, "subject", "MedicationRequest.subject.where(resolve() is Patient)", T_PATIENT, "Returns prescriptions for a specific patient"),
	P("MedicationRequest", "priority", TOKEN, "priority", "MedicationRequest.priority", NULL, "Returns prescriptions with different priorities"),
	P("MedicationRequest", "requester", REFERENCE, "requester", "MedicationRequest.requester", T_AGENT, "Returns prescriptions prescribed by this prescriber"),
	P("MedicationRequest", "status", TOKEN, "status", "MedicationRequest.status", NULL, "Status of the prescription"),
	P("MedicationRequest", "subject", REFERENCE, "subject", "MedicationRequest.subject", NULL, "The identity of a patient to list orders for"),
	P("Observation", "based-on", REFERENCE, "basedOn", "Observation.basedOn", T_OBS_BASED_ON, "Reference to the service request"),
	P("Observation", "category", TOKEN, "category", "Observation.category", NULL, "The classification of the type of observation"),
	P("Observation", "code", TOKEN, "code", "Observation.code", NULL, "The code of the observation type"),
	P("Observation", "combo-code", TOKEN, "code | component.code", "Observation.code | Observation.component.code", NULL, "The code of the observation type or component type"),
	P("Observation", "combo-value-concept", TOKEN, "valueCodeableConcept | component.valueCodeableConcept", "(Observation.value as CodeableConcept) | (Observation.component.value as CodeableConcept)", NULL, "The value or component value of the observation, if the value is a CodeableConcept"),
	P("Observation", "combo-value-quantity", QUANTITY, "valueQuantity | component.valueQuantity", "(Observation.value as Quantity) | (Observation.value as SampledData) | (Observation.component.value as Quantity) | (Observation.component.value as SampledData)", NULL, "The value or component value of the observation, if the value is a Quantity"),
	P("Observation", "component-code", TOKEN, "component.code", "Observation.component.code", NULL, "The component code of the observation type"),
	P("Observation", "component-value-concept", TOKEN, "component.valueCodeableConcept", "(Observation.component.value as CodeableConcept)", NULL, "The value of the component observation, if the value is a CodeableConcept"),
	P("Observation", "component-value-quantity", QUANTITY, "component.valueQuantity", "(Observation.component.value as Quantity) | (Observation.component.value as SampledData)", NULL, "The value of the component observation, if the value is a Quantity"),
	P("Observation", "data-absent-reason", TOKEN, "dataAbsentReason", "Observation.dataAbsentReason", NULL, "The reason why the expected value in the element Observation.value[x] is missing"),
	P("Observation", "date", DATE, "effective[x]", "Observation.effective", NULL, "Obtained date/time. If the obtained element is a period, a date that falls in the period"),
	P("Observation", "derived-from", REFERENCE, "derivedFrom", "Observation.derivedFrom", T_DERIVED_FROM, "Related measurements the observation is made from"),
	P("Observation", "device", REFERENCE, "device", "Observation.device", T_DEVICE, "The Device that generated the observation data"),
	P("Observation", "encounter", REFERENCE, "encounter", "Observation.encounter", T_ENCOUNTER, "Encounter related to the observation"),
	P("Observation", "focus", REFERENCE, "focus", "Observation.focus", NULL, "The focus of an observation when the focus is not the patient of record"),
	P("Observation", "has-member", REFERENCE, "hasMember", "Observation.hasMember", T_HAS_MEMBER, "Related resource that belongs to the Observation group"),
	P("Observation", "identifier", TOKEN, "identifier", "Observation.identifier", NULL, "The unique id for a particular observation"),
	P("Observation", "method", TOKEN, "method", "Observation.method", NULL, "The method used for the observation"),
	P("Observation", "part-of", REFERENCE, "partOf", "Observation.partOf", T_OBS_PART_OF, "Part of referenced event"),
	P("Observation", "patient", REFERENCE, "subject", "Observation.subject.where(resolve() is Patient)", T_PATIENT, "The subject that the observation is about (if patient)"),
	P("Observation", "performer", REFERENCE, "performer", "Observation.performer", T_OBS_PERFORMER, "Who performed the observation"),
	P("Observation", "specimen", REFERENCE, "specimen", "Observation.specimen", T_SPECIMEN, "Specimen used for this observation"),
	P("Observation", "status", TOKEN, "status", "Observation.status", NULL, "The status of the observation"),
	P("Observation", "subject", REFERENCE, "subject", "Observation.subject", NULL, "The subject that the observation is about"),
	P("Observation", "value-concept", TOKEN, "valueCodeableConcept", "(Observation.value as CodeableConcept)", NULL, "The value of the observation, if the value is a CodeableConcept"),
	P("Observation", "value-date", DATE, "valueDateTime | valuePeriod", "(Observation.value as dateTime) | (Observation.value as Period)", NULL, "The value of the observation, if the value is a date or period of time"),
	P("Observation", "value-quantity", QUANTITY, "valueQuantity", "(Observation.value as Quantity) | (Observation.value as SampledData)", NULL, "The value of the observation, if the value is a Quantity"),
	P("Observation", "value-string", STRING, "valueString | valueCodeableConcept.text", "(Observation.value as string) | (Observation.value as CodeableConcept).text", NULL, "The value of the observation, if the value is a string"),
	P("Organization", "active", TOKEN, "active", "Organization.active", NULL, "Is the Organization record active"),
	P("Organization", "address", STRING, "address", "Organization.address", NULL, "A server defined search that may match any of the string fields in the Address"),
	P("Organization", "address-city", STRING, "address.city", "Organization.address.city", NULL, "A city specified in an address"),
	P("Organization", "address-country", STRING, "address.country", "Organization.address.country", NULL, "A country specified in an address"),
	P("Organization", "address-postalcode", STRING, "address.postalCode", "Organization.address.postalCode", NULL, "A postal code specified in an address"),
	P("Organization", "address-state", STRING, "address.state", "Organization.address.state", NULL, "A state specified in an address"),
	P("Organization", "address-use", TOKEN, "address.use", "Organization.address.use", NULL, "A use code specified in an address"),
	P("Organization", "endpoint", REFERENCE, "endpoint", "Organization.endpoint", T_ENDPOINT, "Technical endpoints providing access to services operated for the organization"),
	P("Organization", "identifier", TOKEN, "identifier", "Organization.identifier", NULL, "Any identifier for the organization (not the accreditation issuer's identifier)"),
	P("Organization", "name", STRING, "name | alias", "Organization.name | Organization.alias", NULL, "A portion of the organization's name or alias"),
	P("Organization", "partof", REFERENCE, "partOf", "Organization.partOf", T_ORGANIZATION, "An organization of which this organization forms a part"),
	P("Organization", "type", TOKEN, "type", "Organization.type", NULL, "A code for the type of organization"),
	P("Patient", "active", TOKEN, "active", "Patient.active", NULL, "Whether the patient record is active"),
	P("Patient", "address", STRING, "address", "Patient.address", NULL, "A server defined search that may match any of the string fields in the Address"),
	P("Patient", "address-city", STRING, "address.city", "Patient.address.city", NULL, "A city specified in an address"),
	P("Patient", "address-country", STRING, "address.country", "Patient.address.country", NULL, "A country specified in an address"),
	P("Patient", "address-postalcode", STRING, "address.postalCode", "Patient.address.postalCode", NULL, "A postalCode specified in an address"),
	P("Patient", "address-state", STRING, "address.state", "Patient.address.state", NULL, "A state specified in an address"),
	P("Patient", "address-use", TOKEN, "address.use", "Patient.address.use", NULL, "A use code specified in an address"),
	P("Patient", "birthdate", DATE, "birthDate", "Patient.birthDate", NULL, "The patient's date of birth"),
	P("Patient", "death-date", DATE, "deceasedDateTime", "(Patient.deceased as dateTime)", NULL, "The date of death has been provided and satisfies this search value"),
	P("Patient", "email", TOKEN, "telecom.where(system='email')", "Patient.telecom.where(system='email')", NULL, "A value in an email contact"),
	P("Patient", "family", STRING, "name.family", "Patient.name.family", NULL, "A portion of the family name of the patient"),
	P("Patient", "gender", TOKEN, "gender", "Patient.gender", NULL, "Gender of the patient"),
	P("Patient", "general-practitioner", REFERENCE, "generalPractitioner", "Patient.generalPractitioner", T_ORG_PRAC_ROLE, "Patient's nominated general practitioner, not the organization that manages the record"),
	P("Patient", "given", STRING, "name.given", "Patient.name.given", NULL, "A portion of the given name of the patient"),
	P("Patient", "identifier", TOKEN, "identifier", "Patient.identifier", NULL, "A patient identifier"),
	P("Patient", "language", TOKEN, "communication.language", "Patient.communication.language", NULL, "Language code (irrespective of use value)"),
	P("Patient", "link", REFERENCE, "link.other", "Patient.link.other", T_PATIENT_RP, "All patients linked to the given patient"),
	P("Patient", "name", STRING, "name", "Patient.name", NULL, "A server defined search that may match any of the string fields in the HumanName"),
	P("Patient", "organization", REFERENCE, "managingOrganization", "Patient.managingOrganization", T_ORGANIZATION, "The organization that is the custodian of the patient record"),
	P("Patient", "phone", TOKEN, "telecom.where(system='phone')", "Patient.telecom.where(system='phone')", NULL, "A value in a phone contact"),
	P("Patient", "telecom", TOKEN, "telecom", "Patient.telecom", NULL, "The value in any kind of telecom details of the patient"),
	P("Practitioner", "active", TOKEN, "active", "Practitioner.active", NULL, "Whether the practitioner record is active"),
	P("Practitioner", "address", STRING, "address", "Practitioner.address", NULL, "A server defined search that may match any of the string fields in the Address"),
	P("Practitioner", "address-city", STRING, "address.city", "Practitioner.address.city", NULL, "A city specified in an address"),
	P("Practitioner", "address-country", STRING, "address.country", "Practitioner.address.country", NULL, "A country specified in an address"),
	P("Practitioner", "address-postalcode", STRING, "address.postalCode", "Practitioner.address.postalCode", NULL, "A postalCode specified in an address"),
	P("Practitioner", "address-state", STRING, "address.state", "Practitioner.address.state", NULL, "A state specified in an address"),
	P("Practitioner", "communication", TOKEN, "communication", "Practitioner.communication", NULL, "One of the languages that the practitioner can communicate with"),
	P("Practitioner", "email", TOKEN, "telecom.where(system='email')", "Practitioner.telecom.where(system='email')", NULL, "A value in an email contact"),
	P("Practitioner", "family", STRING, "name.family", "Practitioner.name.family", NULL, "A portion of the family name"),
	P("Practitioner", "gender", TOKEN, "gender", "Practitioner.gender", NULL, "Gender of the practitioner"),
	P("Practitioner", "given", STRING, "name.given", "Practitioner.name.given", NULL, "A portion of the given name"),
	P("Practitioner", "identifier", TOKEN, "identifier", "Practitioner.identifier", NULL, "A practitioner's Identifier"),
	P("Practitioner", "name", STRING, "name", "Practitioner.name", NULL, "A server defined search that may match any of the string fields in the HumanName"),
	P("Practitioner", "phone", TOKEN, "telecom.where(system='phone')", "Practitioner.telecom.where(system='phone')", NULL, "A value in a phone contact"),
	P("Practitioner", "telecom", TOKEN, "telecom", "Practitioner.telecom", NULL, "The value in any kind of contact"),
	P("PractitionerRole", "active", TOKEN, "active", "PractitionerRole.active", NULL, "Whether this practitioner role record is in active use"),
	P("PractitionerRole", "date", DATE, "period", "PractitionerRole.period", NULL, "The period during which the practitioner is authorized to perform in these role(s)"),
	P("PractitionerRole", "email", TOKEN, "telecom.where(system='email')", "PractitionerRole.telecom.where(system='email')", NULL, "A value in an email contact"),
	P("PractitionerRole", "endpoint", REFERENCE, "endpoint", "PractitionerRole.endpoint", T_ENDPOINT, "Technical endpoints providing access to services operated for the practitioner with this role"),
	P("PractitionerRole", "identifier", TOKEN, "identifier", "PractitionerRole.identifier", NULL, "A practitioner's Identifier"),
	P("PractitionerRole", "location", REFERENCE, "location", "PractitionerRole.location", T_LOCATION, "One of the locations at which this practitioner provides care"),
	P("PractitionerRole", "organization", REFERENCE, "organization", "PractitionerRole.organization", T_ORGANIZATION, "The identity of the organization the practitioner represents / acts on behalf of"),
	P("PractitionerRole", "phone", TOKEN, "telecom.where(system='phone')", "PractitionerRole.telecom.where(system='phone')", NULL, "A value in a phone contact"),
	P("PractitionerRole", "practitioner", REFERENCE, "practitioner", "PractitionerRole.practitioner", T_PRACTITIONER, "Practitioner that is able to provide the defined services for the organization"),
	P("PractitionerRole", "role", TOKEN, "code", "PractitionerRole.code", NULL, "The practitioner can perform this role at for the organization"),
	P("PractitionerRole", "service", REFERENCE, "healthcareService", "PractitionerRole.healthcareService", T_HEALTHCARESERVICE, "The list of healthcare services that this worker provides for this role's Organization/Location(s)"),
	P("PractitionerRole", "specialty", TOKEN, "specialty", "PractitionerRole.specialty", NULL, "The practitioner has this specialty at an organization"),
	P("PractitionerRole", "telecom", TOKEN, "telecom", "PractitionerRole.telecom", NULL, "The value in any kind of contact"),
	P("Procedure", "based-on", REFERENCE, "basedOn", "Procedure.basedOn", T_PROC_BASED_ON, "A request for this procedure"),
	P("Procedure", "category", TOKEN, "category", "Procedure.category", NULL, "Classification of the procedure"),
	P("Procedure", "code", TOKEN, "code", "Procedure.code", NULL, "A code to identify a procedure"),
	P("Procedure", "date", DATE, "performed[x]", "Procedure.performed", NULL, "When the procedure was performed"),
	P("Procedure", "encounter", REFERENCE, "encounter", "Procedure.encounter", T_ENCOUNTER, "Encounter created as part of"),
	P("Procedure", "identifier", TOKEN, "identifier", "Procedure.identifier", NULL, "A unique identifier for a procedure"),
	P("Procedure", "location", REFERENCE, "location", "Procedure.location", T_LOCATION, "Where the procedure happened"),
	P("Procedure", "part-of", REFERENCE, "partOf", "Procedure.partOf", T_PROC_PART_OF, "Part of referenced event"),
	P("Procedure", "patient", REFERENCE, "subject", "Procedure.subject.where(resolve() is Patient)", T_PATIENT, "Search by subject - a patient"),
	P("Procedure", "performer", REFERENCE, "performer.actor", "Procedure.performer.actor", T_AGENT, "The reference to the practitioner"),
	P("Procedure", "reason-code", TOKEN, "reasonCode", "Procedure.reasonCode", NULL, "Coded reason procedure performed"),
	P("Procedure", "reason-reference", REFERENCE, "reasonReference", "Procedure.reasonReference", T_PROC_REASON, "The justification that the procedure was performed"),
	P("Procedure", "status", TOKEN, "status", "Procedure.status", NULL, "preparation | in-progress | not-done | on-hold | stopped | completed | entered-in-error | unknown"),
	P("Procedure", "subject", REFERENCE, "subject", "Procedure.subject", NULL, "Search by subject"),
	P("Provenance", "agent", REFERENCE, "agent.who", "Provenance.agent.who", T_AGENT, "Who participated"),
	P("Provenance", "agent-role", TOKEN, "agent.role", "Provenance.agent.role", NULL, "What the agents role was"),
	P("Provenance", "agent-type", TOKEN, "agent.type", "Provenance.agent.type", NULL, "How the agent participated"),
	P("Provenance", "entity", REFERENCE, "entity.what", "Provenance.entity.what", NULL, "Identity of entity"),
	P("Provenance", "location", REFERENCE, "location", "Provenance.location", T_LOCATION, "Where the activity occurred, if relevant"),
	P("Provenance", "patient", REFERENCE, "target", "Provenance.target.where(resolve() is Patient)", T_PATIENT, "Target Reference(s) (usually version specific)"),
	P("Provenance", "recorded", DATE, "recorded", "Provenance.recorded", NULL, "When the activity was recorded / updated"),
	P("Provenance", "signature-type", TOKEN, "signature.type", "Provenance.signature.type", NULL, "Indication of the reason the entity signed the object(s)"),
	P("Provenance", "target", REFERENCE, "target", "Provenance.target", NULL, "Target Reference(s) (usually version specific)"),
	P("Provenance", "when", DATE, "occurredDateTime", "(Provenance.occurred as dateTime)", NULL, "When the activity occurred"),
	P("Questionnaire", "code", TOKEN, "item.code", "Questionnaire.item.code", NULL, "A code that corresponds to one of its items in the questionnaire"),
	P("Questionnaire", "date", DATE, "date", "Questionnaire.date", NULL, "The questionnaire publication date"),
	P("Questionnaire", "definition", URI, "item.definition", "Questionnaire.item.definition", NULL, "ElementDefinition - details for the item"),
	P("Questionnaire", "description", STRING, "description", "Questionnaire.description", NULL, "The description of the questionnaire"),
	P("Questionnaire", "effective", DATE, "effectivePeriod", "Questionnaire.effectivePeriod", NULL, "The time during which the questionnaire is intended to be in use"),
	P("Questionnaire", "identifier", TOKEN, "identifier", "Questionnaire.identifier", NULL, "External identifier for the questionnaire"),
	P("Questionnaire", "jurisdiction", TOKEN, "jurisdiction", "Questionnaire.jurisdiction", NULL, "Intended jurisdiction for the questionnaire"),
	P("Questionnaire", "name", STRING, "name", "Questionnaire.name", NULL, "Computationally friendly name of the questionnaire"),
	P("Questionnaire", "publisher", STRING, "publisher", "Questionnaire.publisher", NULL, "Name of the publisher of the questionnaire"),
	P("Questionnaire", "status", TOKEN, "status", "Questionnaire.status", NULL, "The current status of the questionnaire"),
	P("Questionnaire", "subject-type", TOKEN, "subjectType", "Questionnaire.subjectType", NULL, "Resource that can be subject of QuestionnaireResponse"),
	P("Questionnaire", "title", STRING, "title", "Questionnaire.title", NULL, "The human-friendly name of the questionnaire"),
	P("Questionnaire", "url", URI, "url", "Questionnaire.url", NULL, "The uri that identifies the questionnaire"),
	P("Questionnaire", "version", TOKEN, "version", "Questionnaire.version", NULL, "The business version of the questionnaire"),
	P("QuestionnaireResponse", "author", REFERENCE, "author", "QuestionnaireResponse.author", T_AGENT, "The author of the questionnaire response"),
	P("QuestionnaireResponse", "authored", DATE, "authored", "QuestionnaireResponse.authored", NULL, "When the questionnaire response was last changed"),
	P("QuestionnaireResponse", "based-on", REFERENCE, "basedOn", "QuestionnaireResponse.basedOn", T_PROC_BASED_ON, "Plan/proposal/order fulfilled by this questionnaire response"),
	P("QuestionnaireResponse", "encounter", REFERENCE, "encounter", "QuestionnaireResponse.encounter", T_ENCOUNTER, "Encounter associated with the questionnaire response"),
	P("QuestionnaireResponse", "identifier", TOKEN, "identifier", "QuestionnaireResponse.identifier", NULL, "The unique identifier for the questionnaire response"),
	P("QuestionnaireResponse", "part-of", REFERENCE, "partOf", "QuestionnaireResponse.partOf", T_QR_PART_OF, "Procedure or observation this questionnaire response was performed as a part of"),
	P("QuestionnaireResponse", "patient", REFERENCE, "subject", "QuestionnaireResponse.subject.where(resolve() is Patient)", T_PATIENT, "The patient that is the subject of the questionnaire response"),
	P("QuestionnaireResponse", "questionnaire", REFERENCE, "questionnaire", "QuestionnaireResponse.questionnaire", T_QUESTIONNAIRE, "The questionnaire the answers are provided for"),
	P("QuestionnaireResponse", "source", REFERENCE, "source", "QuestionnaireResponse.source", T_ASSERTER, "The individual providing the information reflected in the questionnaire response"),
	P("QuestionnaireResponse", "status", TOKEN, "status", "QuestionnaireResponse.status", NULL, "The status of the questionnaire response"),
	P("QuestionnaireResponse", "subject", REFERENCE, "subject", "QuestionnaireResponse.subject", NULL, "The subject of the questionnaire response"),
	P("RelatedPerson", "active", TOKEN, "active", "RelatedPerson.active", NULL, "Indicates if the related person record is active"),
	P("RelatedPerson", "address", STRING, "address", "RelatedPerson.address", NULL, "A server defined search that may match any of the string fields in the Address"),
	P("RelatedPerson", "birthdate", DATE, "birthDate", "RelatedPerson.birthDate", NULL, "The Related Person's date of birth"),
	P("RelatedPerson", "email", TOKEN, "telecom.where(system='email')", "RelatedPerson.telecom.where(system='email')", NULL, "A value in an email contact"),
	P("RelatedPerson", "gender", TOKEN, "gender", "RelatedPerson.gender", NULL, "Gender of the related person"),
	P("RelatedPerson", "identifier", TOKEN, "identifier", "RelatedPerson.identifier", NULL, "An Identifier of the RelatedPerson"),
	P("RelatedPerson", "name", STRING, "name", "RelatedPerson.name", NULL, "A server defined search that may match any of the string fields in the HumanName"),
	P("RelatedPerson", "patient", REFERENCE, "patient", "RelatedPerson.patient", T_PATIENT, "The patient this related person is related to"),
	P("RelatedPerson", "phone", TOKEN, "telecom.where(system='phone')", "RelatedPerson.telecom.where(system='phone')", NULL, "A value in a phone contact"),
	P("RelatedPerson", "relationship", TOKEN, "relationship", "RelatedPerson.relationship", NULL, "The relationship between the patient and the relatedperson"),
	P("RelatedPerson", "telecom", TOKEN, "telecom", "RelatedPerson.telecom", NULL, "The value in any kind of contact"),
	P("ServiceRequest", "authored", DATE, "authoredOn", "ServiceRequest.authoredOn", NULL, "Date request signed"),
	P("ServiceRequest", "based-on", REFERENCE, "basedOn", "ServiceRequest.basedOn", T_SR_BASED_ON, "What request fulfills"),
	P("ServiceRequest", "body-site", TOKEN, "bodySite", "ServiceRequest.bodySite", NULL, "Where procedure is going to be done"),
	P("ServiceRequest", "category", TOKEN, "category", "ServiceRequest.category", NULL, "Classification of service"),
	P("ServiceRequest", "code", TOKEN, "code", "ServiceRequest.code", NULL, "What is being requested/ordered"),
	P("ServiceRequest", "encounter", REFERENCE, "encounter", "ServiceRequest.encounter", T_ENCOUNTER, "An encounter in which this request is made"),
	P("ServiceRequest", "identifier", TOKEN, "identifier", "ServiceRequest.identifier", NULL, "Identifiers assigned to this order"),
	P("ServiceRequest", "intent", TOKEN, "intent", "ServiceRequest.intent", NULL, "proposal | plan | directive | order | original-order | reflex-order | filler-order | instance-order | option"),
	P("ServiceRequest", "occurrence", DATE, "occurrence[x]", "ServiceRequest.occurrence", NULL, "When service should occur"),
	P("ServiceRequest", "patient", REFERENCE, "subject", "ServiceRequest.subject.where(resolve() is Patient)", T_PATIENT, "Search by subject - a patient"),
	P("ServiceRequest", "performer", REFERENCE, "performer", "ServiceRequest.performer", T_ANY_PERFORMER, "Requested performer"),
	P("ServiceRequest", "performer-type", TOKEN, "performerType", "ServiceRequest.performerType", NULL, "Performer role"),
	P("ServiceRequest", "priority", TOKEN, "priority", "ServiceRequest.priority", NULL, "routine | urgent | asap | stat"),
	P("ServiceRequest", "replaces", REFERENCE, "replaces", "ServiceRequest.replaces", T_SERVICEREQUEST, "What request replaces"),
	P("ServiceRequest", "requester", REFERENCE, "requester", "ServiceRequest.requester", T_AGENT, "Who/what is requesting service"),
	P("ServiceRequest", "requisition", TOKEN, "requisition", "ServiceRequest.requisition", NULL, "Composite Request ID"),
	P("ServiceRequest", "specimen", REFERENCE, "specimen", "ServiceRequest.specimen", T_SPECIMEN, "Specimen to be tested"),
	P("ServiceRequest", "status", TOKEN, "status", "ServiceRequest.status", NULL, "draft | active | on-hold | revoked | completed | entered-in-error | unknown"),
	P("ServiceRequest", "subject", REFERENCE, "subject", "ServiceRequest.subject", NULL, "Search by subject"),
	P("Task", "authored-on", DATE, "authoredOn", "Task.authoredOn", NULL, "Search by creation date"),
	P("Task", "based-on", REFERENCE, "basedOn", "Task.basedOn", NULL, "Search by requests this task is based on"),
	P("Task", "business-status", TOKEN, "businessStatus", "Task.businessStatus", NULL, "Search by business status"),
	P("Task", "code", TOKEN, "code", "Task.code", NULL, "Search by task code"),
	P("Task", "encounter", REFERENCE, "encounter", "Task.encounter", T_ENCOUNTER, "Search by encounter"),
	P("Task", "focus", REFERENCE, "focus", "Task.focus", NULL, "Search by task focus"),
	P("Task", "for", REFERENCE, "for", "Task.for", NULL, "Search by beneficiary"),
	P("Task", "group-identifier", TOKEN, "groupIdentifier", "Task.groupIdentifier", NULL, "Search by group identifier"),
	P("Task", "identifier", TOKEN, "identifier", "Task.identifier", NULL, "Search for a task instance by its business identifier"),
	P("Task", "intent", TOKEN, "intent", "Task.intent", NULL, "Search by task intent"),
	P("Task", "modified", DATE, "lastModified", "Task.lastModified", NULL, "Search by last modification date"),
	P("Task", "owner", REFERENCE, "owner", "Task.owner", T_ANY_PERFORMER, "Search by task owner"),
	P("Task", "part-of", REFERENCE, "partOf", "Task.partOf", T_TASK, "Search by task this task is part of"),
	P("Task", "patient", REFERENCE, "for", "Task.for.where(resolve() is Patient)", T_PATIENT, "Search by patient"),
	P("Task", "performer", TOKEN, "performerType", "Task.performerType", NULL, "Search by recommended type of performer (e.g., Requester, Performer, Scheduler)"),
	P("Task", "period", DATE, "executionPeriod", "Task.executionPeriod", NULL, "Search by period Task is/was underway"),
	P("Task", "priority", TOKEN, "priority", "Task.priority", NULL, "Search by task priority"),
	P("Task", "requester", REFERENCE, "requester", "Task.requester", T_AGENT, "Search by task requester"),
	P("Task", "status", TOKEN, "status", "Task.status", NULL, "Search by task status"),
	P("Task", "subject", REFERENCE, "for", "Task.for", NULL, "Search by subject"),
	{NULL, NULL, FHIR_PARAM_TOKEN, NULL, NULL, NULL, NULL},
};
/* clang-format on */

#define NPARAMS (sizeof(fhir_params) / sizeof(fhir_params[0]) - 1)

/* strcmp order of (type, code) with a NULL type before every name. */
static int key_cmp(const char *type, const char *code, const struct fhir_param *p)
{
	int r = strcmp(type ? type : "", p->type ? p->type : "");
	return r ? r : strcmp(code, p->code);
}

/* Index of the first entry whose key is >= (type, code). */
static size_t lower_bound(const char *type, const char *code)
{
	size_t lo = 0, hi = NPARAMS;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (key_cmp(type, code, &fhir_params[mid]) > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static const struct fhir_param *find_exact(const char *type, const char *code)
{
	size_t i = lower_bound(type, code);

	if (i < NPARAMS && key_cmp(type, code, &fhir_params[i]) == 0)
		return &fhir_params[i];
	return NULL;
}

const struct fhir_param *fhir_param_find(const char *type, const char *code)
{
	const struct fhir_param *p = NULL;

	if (!code)
		return NULL;
	if (type)
		p = find_exact(type, code);
	return p ? p : find_exact(NULL, code);
}

const struct fhir_param *fhir_params_of(const char *type, size_t *n)
{
	size_t i = lower_bound(type, ""), j = i;
	const char *t = type ? type : "";

	while (j < NPARAMS && !strcmp(t, fhir_params[j].type ? fhir_params[j].type : ""))
		j++;
	*n = j - i;
	return &fhir_params[i];
}

/*
 * The patient compartment (R4 CompartmentDefinition "patient"), restricted
 * to the supported types.  Deviations, both on purpose: Device (its
 * `patient`) and Task (its `patient`, i.e. Task.for) are in the compartment
 * here, because in a patient-facing server an implanted device or a task
 * for the patient is part of that patient's record.  A Patient is in its
 * own compartment as well (see fhir_index_resource()).
 */
static const struct {
	const char *type;
	const char *const *params;
} compartment[] = {
#define C(t, ...) {t, (const char *const[]){__VA_ARGS__, NULL}}
	C("AllergyIntolerance", "patient", "recorder", "asserter"),
	C("Appointment", "actor"),
	C("AuditEvent", "patient"),
	C("CarePlan", "patient", "performer"),
	C("CareTeam", "patient", "participant"),
	C("Communication", "subject", "sender", "recipient"),
	C("Condition", "patient", "asserter"),
	C("Consent", "patient"),
	C("Device", "patient"),
	C("DiagnosticReport", "subject"),
	C("DocumentReference", "subject", "author"),
	C("Encounter", "patient"),
	C("Goal", "patient"),
	C("Immunization", "patient"),
	C("MedicationRequest", "subject"),
	C("Observation", "subject", "performer"),
	C("Patient", "link"),
	C("Procedure", "patient", "performer"),
	C("Provenance", "patient"),
	C("QuestionnaireResponse", "subject", "author"),
	C("RelatedPerson", "patient"),
	C("ServiceRequest", "subject", "performer"),
	C("Task", "patient"),
#undef C
};

const char *const *fhir_compartment_params(const char *type)
{
	static const char *const none[] = {NULL};

	if (!type)
		return none;
	for (size_t i = 0; i < sizeof(compartment) / sizeof(compartment[0]); i++)
		if (!strcmp(compartment[i].type, type))
			return compartment[i].params;
	return none;
}

bool fhir_type_in_record(const char *type)
{
	return type && (!strcmp(type, "Patient") || fhir_compartment_params(type)[0] != NULL);
}

/*
 * Aliases: a reference parameter whose path equals that of another
 * reference parameter of the same type with unrestricted targets, and which
 * itself allows exactly one target type, is that parameter narrowed to the
 * target type (Observation "patient" is "subject" pointing at a Patient).
 * Such a parameter gets no index rows of its own; searches, includes and
 * chains use the base parameter's rows with a target-type filter.  This
 * saves about a sixth of the index rows of a clinical resource.
 */
static const struct fhir_param *alias_base[NPARAMS];
static pthread_once_t alias_once = PTHREAD_ONCE_INIT;

static void alias_build(void)
{
	for (size_t i = 0; i < NPARAMS; i++) {
		const struct fhir_param *p = &fhir_params[i];
		const struct fhir_param *own;
		size_t n;

		if (p->kind != FHIR_PARAM_REFERENCE || !p->type || !p->targets || !p->targets[0] ||
		    p->targets[1])
			continue;
		own = fhir_params_of(p->type, &n);
		for (size_t k = 0; k < n; k++) {
			const struct fhir_param *s = &own[k];
			if (s != p && s->kind == FHIR_PARAM_REFERENCE && !s->targets &&
			    !strcmp(s->path, p->path)) {
				alias_base[i] = s;
				break;
			}
		}
	}
}

const struct fhir_param *fhir_param_base(const struct fhir_param *p, const char **target_type)
{
	const struct fhir_param *b;

	pthread_once(&alias_once, alias_build);
	b = p >= fhir_params && p < fhir_params + NPARAMS ? alias_base[p - fhir_params] : NULL;
	if (target_type)
		*target_type = b ? p->targets[0] : NULL;
	return b ? b : p;
}
