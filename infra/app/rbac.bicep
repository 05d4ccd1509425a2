// Role assignments of the function app's user-assigned identity, each on the narrowest
// scope that works: the storage account, each event queue, the Application Insights
// component, the vault.
param principalId string
param storageAccountName string
param applicationInsightsName string
param keyVaultName string
// The event queues (made by core/storage/storage.bicep; docs/events.md).
param eventsQueueName string
param eventsOutboxQueueName string
param eventsPoisonQueueName string

// Built-in role definition ids (the same in every tenant).
var roles = {
  // Host storage and the deployment package: the host's documented minimum for identity-based
  // AzureWebJobsStorage. Queue roles are given per queue below, never on the account.
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // the product's tables
  // The event queues. Functions' documented roles for a queue trigger are Storage Queue Data
  // Reader and Storage Queue Data Message Processor, for sending Storage Queue Data Message
  // Sender; Storage Queue Data Contributor would also let the app create and delete queues.
  storageQueueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a' // add messages
  storageQueueDataReader: '19e7f393-937e-4f77-808e-94535e297925' // queue properties, peek
  storageQueueDataMessageProcessor: '8a0f0c08-91a1-4084-bc3d-661d67233fed' // receive, delete
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb' // Entra ID authenticated telemetry
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6' // the Key Vault reference to the signing key
}

var storageRoles = [
  roles.storageBlobDataOwner
  roles.storageTableDataContributor
]

// The relay is triggered by the outbox (read, receive, delete) and stages again what it
// must wait for (send); requests stage their changes' events there (send) and delete the
// message of a lost race (with its pop receipt, which the processor role allows).
var outboxQueueRoles = [
  roles.storageQueueDataReader
  roles.storageQueueDataMessageProcessor
  roles.storageQueueDataMessageSender
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource eventsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: eventsQueueName
}

resource outboxQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: eventsOutboxQueueName
}

resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: eventsPoisonQueueName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource storageRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in storageRoles: {
  name: guid(storage.id, principalId, roleId)
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
  }
}]

// The public queue: the relay only sends to it; what is on it is for the consumers to read.
resource eventsQueueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventsQueue.id, principalId, roles.storageQueueDataMessageSender)
  scope: eventsQueue
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageSender)
  }
}

resource outboxQueueRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in outboxQueueRoles: {
  name: guid(outboxQueue.id, principalId, roleId)
  scope: outboxQueue
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
  }
}]

// The host copies a message that failed five times here (it sends first and creates the
// queue only if it is missing, so sending is enough); nothing in the app reads it.
resource poisonQueueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(poisonQueue.id, principalId, roles.storageQueueDataMessageSender)
  scope: poisonQueue
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageSender)
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, principalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}
