package org.mlcmanager.engine;

import java.util.List;
import java.util.Map;
import org.camunda.bpm.engine.AuthorizationService;
import org.camunda.bpm.engine.IdentityService;
import org.camunda.bpm.engine.authorization.Authorization;
import org.camunda.bpm.engine.authorization.Groups;
import org.camunda.bpm.engine.authorization.Permission;
import org.camunda.bpm.engine.authorization.Permissions;
import org.camunda.bpm.engine.authorization.ProcessDefinitionPermissions;
import org.camunda.bpm.engine.authorization.ProcessInstancePermissions;
import org.camunda.bpm.engine.authorization.Resource;
import org.camunda.bpm.engine.authorization.Resources;
import org.camunda.bpm.engine.identity.Group;
import org.camunda.bpm.engine.identity.User;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.ApplicationArguments;
import org.springframework.boot.ApplicationRunner;
import org.springframework.core.Ordered;
import org.springframework.core.annotation.Order;
import org.springframework.stereotype.Component;

/**
 * The engine's users, groups and authorizations, made so on every start (idempotent).
 *
 * <ul>
 *   <li>{@value #OPERATORS}: the operators; the admin user is one. They deploy processes, which is
 *       running code on the engine, and manage everything in Cockpit. {@code camunda-admin} stays
 *       the engine's admin group.
 *   <li>{@value #WORKERS}: the workers' own user ({@code MLC_ENGINE_WORKER_USER}, password
 *       {@code MLC_ENGINE_WORKER_PASSWORD}; no worker user without one). It fetches, locks and reports
 *       external tasks, reads process instances, their variables and history, starts processes by
 *       message or signal, and evaluates decisions. It may deploy only what {@link DeploymentGuard}
 *       lets a non-operator deploy: DMN decisions in FEEL, which the evaluate-dmn topic needs.
 * </ul>
 *
 * <p>The configured passwords are the truth: an existing user whose password changed gets the new one.
 * Runs before {@link BpmnDirectoryDeployer}, so the engine reports ready only with access in place.
 */
@Component
@Order(Ordered.HIGHEST_PRECEDENCE)
public class EngineAccess implements ApplicationRunner {

  public static final String OPERATORS = "mlc-operators";
  public static final String WORKERS = "mlc-workers";
  private static final Logger LOG = LoggerFactory.getLogger(EngineAccess.class);
  private static final String ANY = "*";

  private static final Map<Resource, List<Permission>> WORKER_GRANTS = Map.of(
      Resources.PROCESS_DEFINITION, List.of(Permissions.READ, ProcessDefinitionPermissions.READ_INSTANCE,
          ProcessDefinitionPermissions.UPDATE_INSTANCE, ProcessDefinitionPermissions.CREATE_INSTANCE,
          ProcessDefinitionPermissions.READ_HISTORY),
      Resources.PROCESS_INSTANCE, List.of(Permissions.CREATE, Permissions.READ, ProcessInstancePermissions.UPDATE),
      Resources.DECISION_DEFINITION, List.of(Permissions.READ, Permissions.CREATE_INSTANCE,
          Permissions.READ_HISTORY),
      Resources.DECISION_REQUIREMENTS_DEFINITION, List.of(Permissions.READ),
      Resources.DEPLOYMENT, List.of(Permissions.CREATE, Permissions.READ));

  private static final List<Resource> OPERATOR_RESOURCES = List.of(Resources.APPLICATION, Resources.DEPLOYMENT,
      Resources.PROCESS_DEFINITION, Resources.PROCESS_INSTANCE, Resources.TASK, Resources.DECISION_DEFINITION,
      Resources.DECISION_REQUIREMENTS_DEFINITION, Resources.BATCH, Resources.HISTORIC_PROCESS_INSTANCE,
      Resources.HISTORIC_TASK, Resources.FILTER, Resources.REPORT, Resources.DASHBOARD, Resources.OPERATION_LOG_CATEGORY);

  private final IdentityService identityService;
  private final AuthorizationService authorizationService;
  private final String adminUser;
  private final String adminPassword;
  private final String workerUser;
  private final String workerPassword;

  public EngineAccess(IdentityService identityService, AuthorizationService authorizationService,
      @Value("${camunda.bpm.admin-user.id}") String adminUser,
      @Value("${camunda.bpm.admin-user.password}") String adminPassword,
      @Value("${mlc.worker-user}") String workerUser,
      @Value("${mlc.worker-password}") String workerPassword) {
    this.identityService = identityService;
    this.authorizationService = authorizationService;
    this.adminUser = adminUser;
    this.adminPassword = adminPassword;
    this.workerUser = workerUser;
    this.workerPassword = workerPassword;
  }

  @Override
  public void run(ApplicationArguments args) {
    group(OPERATORS, "MLC operators");
    grantAll(OPERATORS);
    user(adminUser, adminPassword, "MLC", "Admin", OPERATORS);
    group(WORKERS, "MLC workers");
    WORKER_GRANTS.forEach((resource, permissions) -> grant(WORKERS, resource, permissions));
    if (workerUser.isBlank() || workerPassword.isBlank()) {
      LOG.warn("MLC_ENGINE_WORKER_PASSWORD is not set: no worker user; workers need the admin's credentials");
      return;
    }
    user(workerUser, workerPassword, "MLC", "Worker", WORKERS);
    LOG.info("engine access: {} in {}, worker user {} in {}", adminUser, OPERATORS, workerUser, WORKERS);
  }

  private void group(String id, String name) {
    if (identityService.createGroupQuery().groupId(id).count() == 0) {
      Group group = identityService.newGroup(id);
      group.setName(name);
      group.setType(Groups.GROUP_TYPE_SYSTEM);
      identityService.saveGroup(group);
    }
  }

  private void user(String id, String password, String firstName, String lastName, String groupId) {
    User user = identityService.createUserQuery().userId(id).singleResult();
    if (user == null) {
      user = identityService.newUser(id);
      user.setFirstName(firstName);
      user.setLastName(lastName);
    }
    user.setPassword(password);
    identityService.saveUser(user);
    identityService.unlockUser(id);
    if (identityService.createUserQuery().userId(id).memberOfGroup(groupId).count() == 0) {
      identityService.createMembership(id, groupId);
    }
  }

  private void grantAll(String groupId) {
    for (Resource resource : OPERATOR_RESOURCES) {
      grant(groupId, resource, List.of(Permissions.ALL));
    }
  }

  private void grant(String groupId, Resource resource, List<Permission> permissions) {
    Authorization authorization = authorizationService.createAuthorizationQuery()
        .groupIdIn(groupId).resourceType(resource).resourceId(ANY).singleResult();
    if (authorization == null) {
      authorization = authorizationService.createNewAuthorization(Authorization.AUTH_TYPE_GRANT);
      authorization.setGroupId(groupId);
      authorization.setResource(resource);
      authorization.setResourceId(ANY);
    }
    authorization.setPermissions(permissions.toArray(Permission[]::new));
    authorizationService.saveAuthorization(authorization);
  }
}
