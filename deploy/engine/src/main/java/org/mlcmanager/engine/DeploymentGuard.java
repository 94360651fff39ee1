package org.mlcmanager.engine;

import java.nio.charset.StandardCharsets;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.camunda.bpm.engine.AuthorizationException;
import org.camunda.bpm.engine.impl.cfg.ProcessEngineConfigurationImpl;
import org.camunda.bpm.engine.impl.context.Context;
import org.camunda.bpm.engine.impl.identity.Authentication;
import org.camunda.bpm.engine.impl.persistence.deploy.Deployer;
import org.camunda.bpm.engine.impl.persistence.entity.DeploymentEntity;
import org.camunda.bpm.engine.impl.persistence.entity.ResourceEntity;

/**
 * Lets only operators deploy anything that runs code: a deployment by a user outside
 * {@value EngineAccess#OPERATORS} and the engine's admin groups may hold DMN files only, and only
 * with expressions in the languages {@code mlc.worker-dmn-languages} allows (MLC_ENGINE_WORKER_DMN_LANGUAGES,
 * default FEEL only: a DMN in Groovy or JUEL runs code on the engine, so allowing them trusts whoever
 * registers a model's test criteria). Anything else is refused with an {@link AuthorizationException},
 * which the REST API answers with 403.
 *
 * <p>Camunda's own DEPLOYMENT CREATE permission cannot tell a BPMN from a DMN; the workers need it
 * for evaluate-dmn, which deploys each model's test criteria before evaluating them. Deployments the
 * engine makes itself (no authenticated user, e.g. {@link BpmnDirectoryDeployer}) pass.
 */
class DeploymentGuard implements Deployer {

  private static final List<String> DMN_SUFFIXES = List.of(".dmn", ".dmn11.xml");
  private static final Pattern EXPRESSION_LANGUAGE = Pattern.compile("expressionLanguage\\s*=\\s*[\"']([^\"']*)[\"']");
  private static final Pattern FEEL = Pattern.compile("feel|https?://www\\.omg\\.org/spec/FEEL/\\d+",
      Pattern.CASE_INSENSITIVE);

  private final Set<String> languages;

  /** A guard letting non-operators deploy DMN in FEEL and in {@code languages} (names as DMN writes them). */
  DeploymentGuard(Collection<String> languages) {
    this.languages = languages.stream().map(String::trim).filter(name -> !name.isEmpty())
        .map(name -> name.toLowerCase(Locale.ROOT)).collect(Collectors.toUnmodifiableSet());
  }

  @Override
  public void deploy(DeploymentEntity deployment) {
    ProcessEngineConfigurationImpl configuration = Context.getProcessEngineConfiguration();
    Authentication authentication = Context.getCommandContext().getAuthentication();
    if (!configuration.isAuthorizationEnabled() || authentication == null || authentication.getUserId() == null
        || isOperator(authentication, configuration)) {
      return;
    }
    for (ResourceEntity resource : deployment.getResources().values()) {
      String refusal = refusal(resource);
      if (refusal != null) {
        throw new AuthorizationException("user " + authentication.getUserId() + " may not deploy "
            + resource.getName() + ": " + refusal + "; deploying processes needs group " + EngineAccess.OPERATORS);
      }
    }
  }

  private static boolean isOperator(Authentication authentication, ProcessEngineConfigurationImpl configuration) {
    List<String> groups = authentication.getGroupIds() == null ? List.of() : authentication.getGroupIds();
    List<String> admins = configuration.getAdminGroups() == null ? List.of() : configuration.getAdminGroups();
    List<String> adminUsers = configuration.getAdminUsers() == null ? List.of() : configuration.getAdminUsers();
    return groups.contains(EngineAccess.OPERATORS) || groups.stream().anyMatch(admins::contains)
        || adminUsers.contains(authentication.getUserId());
  }

  private String refusal(ResourceEntity resource) {
    String name = resource.getName().toLowerCase(Locale.ROOT);
    if (DMN_SUFFIXES.stream().noneMatch(name::endsWith)) {
      return "only DMN files may be deployed without being an operator";
    }
    Matcher language = EXPRESSION_LANGUAGE.matcher(new String(resource.getBytes(), StandardCharsets.UTF_8));
    while (language.find()) {
      String written = language.group(1).trim();
      if (!FEEL.matcher(written).matches() && !languages.contains(written.toLowerCase(Locale.ROOT))) {
        return "expression language '" + written + "' is not FEEL"
            + (languages.isEmpty() ? "" : " nor one of " + String.join(", ", languages.stream().sorted().toList()))
            + " (MLC_ENGINE_WORKER_DMN_LANGUAGES)";
      }
    }
    return null;
  }
}
